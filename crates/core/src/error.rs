//! Error helpers shared by the services.

use std::fmt;

/// Displays an error followed by every `source()` in its chain:
/// `reading model: opening models/v3.safetensors: No such file or directory`.
///
/// Services log an error once, at the edge, with this; nothing below the edge logs and re-raises.
#[derive(Debug, Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("loading the model")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_lists_every_cause_in_order() {
        let err = Outer(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no such file",
        ));
        assert_eq!(
            ErrorChain(&err).to_string(),
            "loading the model: no such file"
        );
    }
}
