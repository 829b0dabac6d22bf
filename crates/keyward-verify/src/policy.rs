//! What a verifier does when it has not heard from the revocation feed for
//! a while: a revocation may have happened that it does not know of.

use std::time::Duration;

use crate::error::VerifyError;

/// How long the revocation feed may stay silent (no event, no heartbeat:
/// keyward sends one at least every 15 s) before verification stops
/// trusting the set it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StalePolicy {
    /// Refuse every token with [`VerifyError::FeedStale`] (a `503` in the
    /// web integrations) once the feed has been silent for `after`: a
    /// revoked token is never accepted for longer than that. The default,
    /// with 30 seconds.
    FailClosed {
        /// How long the feed may be silent.
        after: Duration,
    },
    /// Keep verifying with the last known set however long the feed is
    /// silent: availability over strictness.
    FailOpen,
}

impl Default for StalePolicy {
    fn default() -> Self {
        Self::FailClosed {
            after: Duration::from_secs(30),
        }
    }
}

impl StalePolicy {
    /// The verdict for a feed last heard from `silent` ago.
    pub fn check(&self, silent: Duration) -> Result<(), VerifyError> {
        match self {
            Self::FailClosed { after } if silent > *after => Err(VerifyError::FeedStale),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_closed_refuses_after_its_limit_only() {
        let policy = StalePolicy::FailClosed {
            after: Duration::from_secs(10),
        };
        assert_eq!(policy.check(Duration::from_secs(10)), Ok(()));
        assert_eq!(
            policy.check(Duration::from_millis(10_001)),
            Err(VerifyError::FeedStale)
        );
    }

    #[test]
    fn the_default_fails_closed_after_30_seconds_and_fail_open_never_does() {
        let default = StalePolicy::default();
        assert_eq!(default.check(Duration::from_secs(29)), Ok(()));
        assert_eq!(
            default.check(Duration::from_secs(31)),
            Err(VerifyError::FeedStale)
        );
        assert_eq!(
            StalePolicy::FailOpen.check(Duration::from_secs(86_400)),
            Ok(())
        );
    }
}
