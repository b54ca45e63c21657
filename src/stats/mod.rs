//! Remote and local CPU and memory per job and host, from the hosts' process tables.
