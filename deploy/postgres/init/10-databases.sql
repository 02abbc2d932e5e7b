-- The warehouse database owned by the ETL user, and the Dagster storage database owned by its own user.
--
-- The postgres image runs this file on its first start (from /docker-entrypoint-initdb.d, as the superuser),
-- taking every value from the container's environment. It is also a standalone psql script, e.g. to prepare
-- an external PostgreSQL (as a role allowed to create roles and databases):
--
--   psql "host=db.example.com user=postgres dbname=postgres" \
--        -v warehouse_db=warehouse -v etl_user=etl -v etl_password='...' \
--        -v dagster_db=dagster -v dagster_user=dagster -v dagster_password='...' \
--        -f deploy/postgres/init/10-databases.sql
--
--   psql variable      else environment variable
--   warehouse_db       WAREHOUSE_DB_NAME
--   etl_user           WAREHOUSE_DB_USER
--   etl_password       WAREHOUSE_DB_PASSWORD
--   dagster_db         DAGSTER_PG_DB
--   dagster_user       DAGSTER_PG_USER
--   dagster_password   DAGSTER_PG_PASSWORD
--
-- Running it again is safe: existing roles get the given password, existing databases are kept.
-- Needs psql 15+ (\getenv).

\set ON_ERROR_STOP on

\if :{?warehouse_db} \else \getenv warehouse_db WAREHOUSE_DB_NAME \endif
\if :{?etl_user} \else \getenv etl_user WAREHOUSE_DB_USER \endif
\if :{?etl_password} \else \getenv etl_password WAREHOUSE_DB_PASSWORD \endif
\if :{?dagster_db} \else \getenv dagster_db DAGSTER_PG_DB \endif
\if :{?dagster_user} \else \getenv dagster_user DAGSTER_PG_USER \endif
\if :{?dagster_password} \else \getenv dagster_password DAGSTER_PG_PASSWORD \endif

-- Name a missing value: psql itself only reports a syntax error where it is used.
\if :{?warehouse_db} \else \warn 'missing: -v warehouse_db=... or WAREHOUSE_DB_NAME' \endif
\if :{?etl_user} \else \warn 'missing: -v etl_user=... or WAREHOUSE_DB_USER' \endif
\if :{?etl_password} \else \warn 'missing: -v etl_password=... or WAREHOUSE_DB_PASSWORD' \endif
\if :{?dagster_db} \else \warn 'missing: -v dagster_db=... or DAGSTER_PG_DB' \endif
\if :{?dagster_user} \else \warn 'missing: -v dagster_user=... or DAGSTER_PG_USER' \endif
\if :{?dagster_password} \else \warn 'missing: -v dagster_password=... or DAGSTER_PG_PASSWORD' \endif
-- Stop before any change if one is missing (printing no value: some are passwords).
SELECT :{?warehouse_db} AND :{?etl_user} AND :{?etl_password}
   AND :{?dagster_db} AND :{?dagster_user} AND :{?dagster_password} AS settings_given \gset
\if :settings_given
\else
  DO $$ BEGIN RAISE EXCEPTION 'required settings are missing, see the warnings above'; END $$;
\endif

-- Login roles (CREATE ROLE has no IF NOT EXISTS; \gexec runs the statement only when the role is new).
SELECT format('CREATE ROLE %I LOGIN', :'etl_user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'etl_user') \gexec
ALTER ROLE :"etl_user" WITH LOGIN PASSWORD :'etl_password';

SELECT format('CREATE ROLE %I LOGIN', :'dagster_user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'dagster_user') \gexec
ALTER ROLE :"dagster_user" WITH LOGIN PASSWORD :'dagster_password';

-- Each database is owned by its user (who may then create tables in its public schema, PostgreSQL 15+)
-- and closed to everyone else: CONNECT and TEMP are granted explicitly, never through PUBLIC.
SELECT format('CREATE DATABASE %I OWNER %I', :'warehouse_db', :'etl_user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'warehouse_db') \gexec
REVOKE ALL ON DATABASE :"warehouse_db" FROM PUBLIC;

SELECT format('CREATE DATABASE %I OWNER %I', :'dagster_db', :'dagster_user')
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'dagster_db') \gexec
REVOKE ALL ON DATABASE :"dagster_db" FROM PUBLIC;
