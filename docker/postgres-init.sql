-- The second database on the compose stack's PostgreSQL: MLflow's tracking store (doodle's
-- pipeline_runs live in the first, POSTGRES_DB). Run once, when the data volume is new.
CREATE DATABASE mlflow;
