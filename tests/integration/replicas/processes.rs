//! Two real daemons on one PostgreSQL (see the tests below).
