-- A login role that can read the warehouse and do nothing else; the dashboard connects with it.
--
-- It gets SELECT on every table and view of the warehouse schema that exists now and, through
-- ALTER DEFAULT PRIVILEGES, on every one the ETL user creates there later (the warehouse tables are created
-- by the first pipeline run, after this script). No INSERT/UPDATE/DELETE, no CREATE, and its sessions start
-- read-only.
--
-- The postgres image runs this file on its first start (from /docker-entrypoint-initdb.d, as the superuser,
-- after 10-databases.sql), taking its values from the container's environment. By hand, e.g. on an external
-- PostgreSQL, as a superuser or a member of the ETL role:
--
--   psql "host=db.example.com user=postgres dbname=postgres" \
--        -v warehouse_db=warehouse -v owner=etl -v ro_user=dashboard_ro -v ro_password='...' \
--        -f deploy/postgres/init/20-dashboard-readonly.sql
--
--   psql variable   else environment variable
--   warehouse_db    WAREHOUSE_DB_NAME
--   owner           WAREHOUSE_DB_USER       (the role that creates the warehouse tables)
--   ro_user         DASHBOARD_DB_USER
--   ro_password     DASHBOARD_DB_PASSWORD
--   schema          -                       (default: public, where the ETL creates its tables)
--
-- Running it again is safe (the password is reset to the given one). Needs psql 15+ (\getenv).

\set ON_ERROR_STOP on

\if :{?warehouse_db} \else \getenv warehouse_db WAREHOUSE_DB_NAME \endif
\if :{?owner} \else \getenv owner WAREHOUSE_DB_USER \endif
\if :{?ro_user} \else \getenv ro_user DASHBOARD_DB_USER \endif
\if :{?ro_password} \else \getenv ro_password DASHBOARD_DB_PASSWORD \endif
\if :{?schema} \else \set schema public \endif

-- Name a missing value: psql itself only reports a syntax error where it is used.
\if :{?warehouse_db} \else \warn 'missing: -v warehouse_db=... or WAREHOUSE_DB_NAME' \endif
\if :{?owner} \else \warn 'missing: -v owner=... or WAREHOUSE_DB_USER' \endif
\if :{?ro_user} \else \warn 'missing: -v ro_user=... or DASHBOARD_DB_USER' \endif
\if :{?ro_password} \else \warn 'missing: -v ro_password=... or DASHBOARD_DB_PASSWORD' \endif
-- Stop before any change if one is missing (printing no value: some are passwords).
SELECT :{?warehouse_db} AND :{?owner} AND :{?ro_user} AND :{?ro_password} AS settings_given \gset
\if :settings_given
\else
  DO $$ BEGIN RAISE EXCEPTION 'required settings are missing, see the warnings above'; END $$;
\endif

SELECT format('CREATE ROLE %I LOGIN', :'ro_user')
WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'ro_user') \gexec
ALTER ROLE :"ro_user" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'ro_password';
ALTER ROLE :"ro_user" SET default_transaction_read_only = on;
GRANT CONNECT ON DATABASE :"warehouse_db" TO :"ro_user";

\connect :"warehouse_db"

CREATE SCHEMA IF NOT EXISTS :"schema" AUTHORIZATION :"owner";
-- PostgreSQL 15+ already denies CREATE in public to PUBLIC; older servers do not.
REVOKE CREATE ON SCHEMA :"schema" FROM PUBLIC;
GRANT USAGE ON SCHEMA :"schema" TO :"ro_user";
GRANT SELECT ON ALL TABLES IN SCHEMA :"schema" TO :"ro_user";
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA :"schema" GRANT SELECT ON TABLES TO :"ro_user";
