//! Why a query was refused, from any stage of the rewriter.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// Not SQL we accept: a syntax error, a statement that is not a SELECT, a construct
    /// that is not allowed.
    #[error("{0}")]
    Invalid(String),
    #[error("table `{name}` is not allowed; query one of: {allowed}")]
    Table { name: String, allowed: String },
    #[error("function `{0}` is not allowed")]
    Function(String),
    /// Allowed, but over a limit (rows, time): a 422.
    #[error("{0}")]
    Limit(String),
}
