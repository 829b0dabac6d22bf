//! `Username`: 3 to 32 characters of `A-Z a-z 0-9 _ . -`. Parsing is the
//! only way to get one.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    pub(crate) const MIN: usize = 3;
    pub(crate) const MAX: usize = 32;

    pub(crate) fn parse(raw: &str) -> Result<Self, &'static str> {
        if !(Self::MIN..=Self::MAX).contains(&raw.len()) {
            return Err("username must be 3 to 32 characters long");
        }
        if !raw.bytes().all(is_name_byte) {
            return Err("username may only contain letters A-Z, digits, '_', '.' and '-'");
        }
        Ok(Self(raw.to_string()))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The alphabet of usernames and service names: `A-Z a-z 0-9 _ . -`.
pub(crate) fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Username;

    #[test]
    fn accepts_the_allowed_alphabet_and_lengths() {
        for ok in ["abc", "A_b.c-9", &"x".repeat(32)] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_everything_else() {
        for bad in [
            "ab",
            &"x".repeat(33),
            "bad name",
            "émile",
            "semi;colon",
            "",
            "a/b",
        ] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }
}
