{#- Where a stored event came from: its Kafka topic, partition and offset, the key of every staging row. -#}
{% macro source_position_columns() -%}
    EVENT_METADATA:topic::VARCHAR AS SOURCE_TOPIC,
    EVENT_METADATA:partition::INTEGER AS SOURCE_PARTITION,
    EVENT_METADATA:offset::INTEGER AS SOURCE_OFFSET,
    EVENT_METADATA:topic::VARCHAR || '/' || EVENT_METADATA:partition::VARCHAR || '/'
        || EVENT_METADATA:offset::VARCHAR AS EVENT_KEY,
    -- Kafka's timestamp is in seconds since the epoch, with milliseconds.
    DATEADD(MILLISECOND, (EVENT_METADATA:timestamp::FLOAT * 1000)::INTEGER, '1970-01-01 00:00:00 +00:00'::TIMESTAMP_TZ)
        AS KAFKA_TIMESTAMP,
    INGESTION_TIME
{%- endmacro %}

{#- On an incremental run, only the rows past what the model holds, per source partition (`rows` is a relation or
    CTE with SOURCE_TOPIC, SOURCE_PARTITION, SOURCE_OFFSET). The sink commits each partition's rows in offset order
    (its high-water marks), so every row at or below a partition's highest stored offset was committed when that
    one was: nothing is skipped, whenever it committed and whatever its INGESTION_TIME, and nothing is taken twice. -#}
{% macro past_stored_positions(rows) -%}
    {% if is_incremental() %}
    LEFT JOIN (
        SELECT SOURCE_TOPIC, SOURCE_PARTITION, MAX(SOURCE_OFFSET) AS STORED_OFFSET
        FROM {{ this }}
        GROUP BY SOURCE_TOPIC, SOURCE_PARTITION
    ) AS held
        ON held.SOURCE_TOPIC = {{ rows }}.SOURCE_TOPIC AND held.SOURCE_PARTITION = {{ rows }}.SOURCE_PARTITION
    WHERE {{ rows }}.SOURCE_OFFSET > COALESCE(held.STORED_OFFSET, -1)
    {% endif %}
{%- endmacro %}
