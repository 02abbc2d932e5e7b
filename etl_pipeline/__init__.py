"""COVID-19 medallion ETL: MySQL source -> bronze Delta -> Spark silver/gold -> Postgres warehouse."""
