-- Second database on the same server: Airflow's metadata (the platform's data lives in "interest").
create database airflow owner decay;
