"""COVID-19 medallion ETL: MySQL source -> bronze Parquet -> Spark silver/gold -> Postgres warehouse."""
