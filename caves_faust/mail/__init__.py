"""Mails to the shop, in French, over SMTP: the low-stock and restock mails from the stock's outbox, and the
closing-time digest."""
