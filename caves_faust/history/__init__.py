"""Past sales: made into a SQLite file (`history generate`), loaded once each into BATCH_DATA.SALES (`history load`)."""
