//! Category names: the one rule shared by the backend, the UI and the pipeline.
//!
//! A category becomes a folder name, so the rule is strict: 1–64 characters of ASCII letters,
//! digits, space, `_` and `-`; no leading or trailing space. (`.`, `..`, `/`, `\` and NUL can
//! therefore never appear, and no name can leave the image folder.)

use std::fmt;

pub const MAX_LEN: usize = 64;

/// The rule, in words, for error messages and the UI.
pub const RULE: &str = "a category is 1-64 characters of letters, digits, space, '_' or '-', \
                        with no leading or trailing space";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CategoryError {
    #[error("category must not be empty ({RULE})")]
    Empty,
    #[error("category is {0} characters long; at most {MAX_LEN} are allowed ({RULE})")]
    TooLong(usize),
    #[error("category contains {0:?}, which is not allowed ({RULE})")]
    BadCharacter(char),
    #[error("category must not start or end with a space ({RULE})")]
    EdgeSpace,
}

/// A validated category name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Category(String);

impl Category {
    pub fn parse(name: &str) -> Result<Self, CategoryError> {
        if name.is_empty() {
            return Err(CategoryError::Empty);
        }
        let len = name.chars().count();
        if len > MAX_LEN {
            return Err(CategoryError::TooLong(len));
        }
        if let Some(c) = name
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-')))
        {
            return Err(CategoryError::BadCharacter(c));
        }
        if name.starts_with(' ') || name.ends_with(' ') {
            return Err(CategoryError::EdgeSpace);
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Category {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_pass() {
        for ok in [
            "cat",
            "alarm_clock",
            "alarm clock",
            "T-Rex 2",
            "a",
            &"x".repeat(64),
        ] {
            assert_eq!(Category::parse(ok).unwrap().as_str(), ok);
        }
    }

    #[test]
    fn hostile_names_are_refused_with_the_rule() {
        let cases: &[(&str, CategoryError)] = &[
            ("", CategoryError::Empty),
            (".", CategoryError::BadCharacter('.')),
            ("..", CategoryError::BadCharacter('.')),
            ("../etc", CategoryError::BadCharacter('.')),
            ("a/b", CategoryError::BadCharacter('/')),
            ("a\\b", CategoryError::BadCharacter('\\')),
            ("nul\0", CategoryError::BadCharacter('\0')),
            ("new\nline", CategoryError::BadCharacter('\n')),
            ("café", CategoryError::BadCharacter('é')),
            (" cat", CategoryError::EdgeSpace),
            ("cat ", CategoryError::EdgeSpace),
        ];
        for (name, expected) in cases {
            let err = Category::parse(name).unwrap_err();
            assert_eq!(&err, expected, "{name:?}");
            assert!(err.to_string().contains("1-64 characters"), "{err}");
        }
        assert_eq!(
            Category::parse(&"x".repeat(65)).unwrap_err(),
            CategoryError::TooLong(65)
        );
    }
}
