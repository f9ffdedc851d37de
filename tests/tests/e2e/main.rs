//! End to end, in one test binary (linking is the slow part on two cores): the origin and
//! the Worker in workerd (`edge`), three origins on PostgreSQL and Redis (`cluster`), and
//! the container (`deploy`), and the bounds the README states, measured (`bounds`).

mod bounds;
mod cluster;
mod deploy;
mod edge;
