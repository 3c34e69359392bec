"""Every table caves_faust writes or reads in its schema, and every statement on them, in one place (the static SQL
check reads them here). Statements bind their values (qmark paramstyle), never format them in."""

RAW_EVENTS_TABLE = "RAW_EVENTS_STREAM"
OFFSETS_TABLE = "SINK_OFFSETS"
DLQ_EVENTS_TABLE = "DLQ_EVENTS"

DLQ_EVENTS_DDL = f"""CREATE TABLE IF NOT EXISTS {DLQ_EVENTS_TABLE} (
        ERROR_TYPE VARCHAR(64) NOT NULL,
        ERROR_MESSAGE VARCHAR,
        PAYLOAD VARCHAR,
        PAYLOAD_ENCODING VARCHAR(16),
        PAYLOAD_BYTES INTEGER,
        PAYLOAD_TRUNCATED BOOLEAN,
        SOURCE_TOPIC VARCHAR NOT NULL,
        SOURCE_TOPIC_ID VARCHAR,
        SOURCE_PARTITION INTEGER NOT NULL,
        SOURCE_OFFSET INTEGER NOT NULL,
        SOURCE_TIMESTAMP TIMESTAMP_LTZ,
        SOURCE_KEY VARCHAR,
        SOURCE_KEY_ENCODING VARCHAR(16),
        REPLAYED BOOLEAN DEFAULT FALSE NOT NULL,
        REPLAYED_AT TIMESTAMP_LTZ,
        INGESTION_TIME TIMESTAMP_LTZ DEFAULT CURRENT_TIMESTAMP()
    )"""

DDL = [
    f"""CREATE TABLE IF NOT EXISTS {RAW_EVENTS_TABLE} (
        EVENT_TYPE VARCHAR(50),
        PRODUCT_ID INTEGER,
        CUSTOMER_ID INTEGER,
        EVENT_METADATA OBJECT NOT NULL,
        EVENT_CONTENT VARIANT NOT NULL,
        INGESTION_TIME TIMESTAMP_LTZ DEFAULT CURRENT_TIMESTAMP()
    )""",
    # Per source partition, the highest Kafka offset already in RAW_EVENTS_STREAM: written in the same
    # transaction as the rows, so a replay after any crash or rebalance skips what is already stored.
    f"""CREATE TABLE IF NOT EXISTS {OFFSETS_TABLE} (
        TOPIC VARCHAR NOT NULL,
        TOPIC_ID VARCHAR,
        PARTITION INTEGER NOT NULL,
        HIGH_WATER INTEGER NOT NULL,
        UPDATED_AT TIMESTAMP_LTZ DEFAULT CURRENT_TIMESTAMP()
    )""",
    DLQ_EVENTS_DDL,
    # Tables made before a topic's id was kept (a mark, a letter of no known life) gain its column.
    f"ALTER TABLE {OFFSETS_TABLE} ADD COLUMN IF NOT EXISTS TOPIC_ID VARCHAR",
    f"ALTER TABLE {DLQ_EVENTS_TABLE} ADD COLUMN IF NOT EXISTS SOURCE_TOPIC_ID VARCHAR",
]

# One small statement per batch with the whole batch bound as one JSON array parameter, bound on the
# server (qmark paramstyle): the statement stays a few hundred bytes however large the batch, instead of
# the connector inlining megabytes of literal for the server to tokenize, and values never touch the SQL.
INSERT_BATCH = f"""INSERT INTO {RAW_EVENTS_TABLE} (EVENT_TYPE, PRODUCT_ID, CUSTOMER_ID, EVENT_METADATA, EVENT_CONTENT)
    SELECT value:c:event_type::VARCHAR, value:c:product_id::INTEGER, value:c:customer_id::INTEGER,
           value:m::OBJECT, value:c
    FROM TABLE(FLATTEN(input => PARSE_JSON(?)))"""

# Optimistic fencing: the row moves only if nobody else moved it since we read it, so a worker that
# lost its partitions in a rebalance (a zombie) cannot commit duplicates behind the new owner.
ADVANCE_HIGH_WATER = f"""UPDATE {OFFSETS_TABLE} SET HIGH_WATER = s.NEW_HW, UPDATED_AT = CURRENT_TIMESTAMP()
    FROM (SELECT value:p::INTEGER AS P, value:old::INTEGER AS OLD_HW, value:new::INTEGER AS NEW_HW
          FROM TABLE(FLATTEN(input => PARSE_JSON(?)))) s
    WHERE {OFFSETS_TABLE}.TOPIC = ? AND {OFFSETS_TABLE}.TOPIC_ID IS NOT DISTINCT FROM ?
      AND {OFFSETS_TABLE}.PARTITION = s.P AND {OFFSETS_TABLE}.HIGH_WATER = s.OLD_HW"""

INSERT_HIGH_WATER = f"INSERT INTO {OFFSETS_TABLE} (TOPIC, TOPIC_ID, PARTITION, HIGH_WATER) VALUES (?, ?, ?, ?)"

# A topic's marks are its current life's (TOPIC_ID): those of a topic deleted and created again under the same name
# stay, and mark nothing of the new one, whose offsets restart at 0.
READ_HIGH_WATERS = f"""SELECT TOPIC_ID, PARTITION, MAX(HIGH_WATER) FROM {OFFSETS_TABLE}
    WHERE TOPIC = ? GROUP BY TOPIC_ID, PARTITION"""

# Marks written before topic ids were kept are taken, once, for the life the worker finds (it cannot know of a
# topic recreated before it first ran with them).
ADOPT_MARKS = f"UPDATE {OFFSETS_TABLE} SET TOPIC_ID = ? WHERE TOPIC = ? AND TOPIC_ID IS NULL"

# The offsets of a source partition's range that are in the table (streaming: which rows the service refused).
READ_STORED_OFFSETS = f"""SELECT EVENT_METADATA:offset::INTEGER FROM {RAW_EVENTS_TABLE}
    WHERE EVENT_METADATA:topic::VARCHAR = ? AND EVENT_METADATA:topic_id::VARCHAR IS NOT DISTINCT FROM ?
      AND EVENT_METADATA:partition::INTEGER = ?
      AND EVENT_METADATA:offset::INTEGER BETWEEN ? AND ?"""

# A source partition's marks as the tables hold them (streaming: for a channel that opened without a committed
# offset token): the highest offset with a row, and the highest with a DLQ_EVENTS letter.
READ_STORED_MARKS = f"""SELECT
    (SELECT MAX(EVENT_METADATA:offset::INTEGER) FROM {RAW_EVENTS_TABLE}
      WHERE EVENT_METADATA:topic::VARCHAR = ? AND EVENT_METADATA:partition::INTEGER = ?
        AND COALESCE(EVENT_METADATA:topic_id::VARCHAR, ?) IS NOT DISTINCT FROM ?),
    (SELECT MAX(SOURCE_OFFSET) FROM {DLQ_EVENTS_TABLE} WHERE SOURCE_TOPIC = ? AND SOURCE_PARTITION = ?
        AND COALESCE(SOURCE_TOPIC_ID, ?) IS NOT DISTINCT FROM ?)"""

# Where the rows of replayed letters are: only the range of the letters' DLQ offsets at hand is read.
STORED_COPIES = f"""SELECT EVENT_METADATA:replayed_from:topic_id::VARCHAR,
           EVENT_METADATA:replayed_from:partition::INTEGER,
           EVENT_METADATA:replayed_from:offset::INTEGER,
           EVENT_METADATA:partition::INTEGER, EVENT_METADATA:offset::INTEGER
    FROM {RAW_EVENTS_TABLE}
    WHERE EVENT_METADATA:replayed_from:topic::VARCHAR = ?
      AND EVENT_METADATA:replayed_from:offset::INTEGER BETWEEN ? AND ?"""

# A batch's dead letters bound as one JSON array (each the letter as on the DLQ topic), like the rows.
INSERT_LETTERS = f"""INSERT INTO {DLQ_EVENTS_TABLE} (ERROR_TYPE, ERROR_MESSAGE, PAYLOAD, PAYLOAD_ENCODING,
        PAYLOAD_BYTES, PAYLOAD_TRUNCATED, SOURCE_TOPIC, SOURCE_TOPIC_ID, SOURCE_PARTITION, SOURCE_OFFSET,
        SOURCE_TIMESTAMP, SOURCE_KEY, SOURCE_KEY_ENCODING)
    SELECT value:error_type::VARCHAR, value:error_message::VARCHAR, value:payload::VARCHAR,
           value:payload_encoding::VARCHAR, value:payload_bytes::INTEGER, value:payload_truncated::BOOLEAN,
           value:topic::VARCHAR, value:topic_id::VARCHAR, value:partition::INTEGER, value:offset::INTEGER,
           TO_TIMESTAMP_LTZ(ROUND(value:timestamp::NUMBER(38, 3) * 1000)::INTEGER, 3),
           value:key::VARCHAR, value:key_encoding::VARCHAR
    FROM TABLE(FLATTEN(input => PARSE_JSON(?)))"""
INSERT_MISSING_LETTERS = INSERT_LETTERS + f"""
    WHERE NOT EXISTS (SELECT 1 FROM {DLQ_EVENTS_TABLE} d WHERE d.SOURCE_TOPIC = value:topic::VARCHAR
                      AND d.SOURCE_TOPIC_ID IS NOT DISTINCT FROM value:topic_id::VARCHAR
                      AND d.SOURCE_PARTITION = value:partition::INTEGER AND d.SOURCE_OFFSET = value:offset::INTEGER)"""

# A letter is known by its source event's coordinates: one letter per invalid event.
MARK_REPLAYED = f"""UPDATE {DLQ_EVENTS_TABLE} SET REPLAYED = TRUE, REPLAYED_AT = CURRENT_TIMESTAMP()
    FROM (SELECT value:t::VARCHAR AS T, value:p::INTEGER AS P, value:o::INTEGER AS O
          FROM TABLE(FLATTEN(input => PARSE_JSON(?)))) s
    WHERE {DLQ_EVENTS_TABLE}.SOURCE_TOPIC = s.T AND {DLQ_EVENTS_TABLE}.SOURCE_PARTITION = s.P
      AND {DLQ_EVENTS_TABLE}.SOURCE_OFFSET = s.O AND NOT {DLQ_EVENTS_TABLE}.REPLAYED"""

# The locks this user's transactions hold, in every session: resource, type, transaction, transaction_started_on,
# status (HOLDING or WAITING), acquired_on, query_id. Transactions are aborted by id.
SHOW_LOCKS = "SHOW LOCKS"
ABORT_TRANSACTION = "SELECT SYSTEM$ABORT_TRANSACTION(?)"
