//! Dynacast: asking a publisher to encode only the layers someone receives.
//!
//! The highest layer any subscriber wants decides which layers the publisher sends: every layer up to it (the
//! lower ones stay on for fast fallback), none at all when nobody subscribes. Turning a layer on is announced
//! at once, so a subscriber asking for more waits only for the encoder; turning layers off waits
//! [`DOWNGRADE_HOLD`], so a subscriber flipping between qualities (or a tab reloading) does not make the
//! publisher's encoder stop and restart. Pure state; the core emits the announcements.

use std::time::{Duration, Instant};

/// How long the wanted layers must stay lower before the publisher is told to stop the higher ones.
pub const DOWNGRADE_HOLD: Duration = Duration::from_secs(3);

/// What the publisher of one track was last asked to send.
#[derive(Debug, Clone)]
pub struct Dynacast {
    /// The highest layer the publisher was asked to send (`None`: nothing).
    announced: Option<u8>,
    /// Since when the wanted layer has been below `announced`.
    lower_since: Option<Instant>,
}

impl Dynacast {
    /// The publisher starts out sending every layer up to `top`.
    pub fn new(top: u8) -> Self {
        Dynacast {
            announced: Some(top),
            lower_since: None,
        }
    }

    /// The highest layer the publisher was asked to send.
    pub fn announced(&self) -> Option<u8> {
        self.announced
    }

    /// Given the highest layer any subscriber wants now (`None`: no subscriber), the new highest layer to
    /// announce, if it changed.
    pub fn update(&mut self, wanted: Option<u8>, now: Instant) -> Option<Option<u8>> {
        if wanted >= self.announced {
            self.lower_since = None;
            if wanted == self.announced {
                return None;
            }
            self.announced = wanted;
            return Some(wanted);
        }
        let since = *self.lower_since.get_or_insert(now);
        if now.saturating_duration_since(since) < DOWNGRADE_HOLD {
            return None;
        }
        self.lower_since = None;
        self.announced = wanted;
        Some(wanted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn more_is_announced_at_once_less_after_the_hold() {
        let t0 = Instant::now();
        let mut d = Dynacast::new(2);
        assert_eq!(d.update(Some(2), t0), None);
        // Everyone wants the lowest layer now: the publisher keeps sending until the hold passed.
        assert_eq!(d.update(Some(0), t0), None);
        assert_eq!(d.update(Some(0), t0 + Duration::from_secs(1)), None);
        assert_eq!(d.update(Some(0), t0 + DOWNGRADE_HOLD), Some(Some(0)));
        assert_eq!(d.announced(), Some(0));
        // Someone wants the top layer: at once.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(d.update(Some(2), t1), Some(Some(2)));
        // Nobody subscribes any more: after the hold, nothing is sent at all.
        assert_eq!(d.update(None, t1), None);
        assert_eq!(d.update(None, t1 + DOWNGRADE_HOLD), Some(None));
        // A subscriber arrives: on again at once.
        assert_eq!(d.update(Some(1), t1 + DOWNGRADE_HOLD), Some(Some(1)));
    }

    #[test]
    fn a_brief_dip_changes_nothing() {
        let t0 = Instant::now();
        let mut d = Dynacast::new(2);
        assert_eq!(d.update(Some(0), t0), None);
        assert_eq!(d.update(Some(2), t0 + Duration::from_secs(1)), None);
        assert_eq!(d.update(Some(0), t0 + Duration::from_secs(2)), None);
        assert_eq!(d.update(Some(0), t0 + Duration::from_secs(4)), None);
        assert_eq!(
            d.update(Some(0), t0 + Duration::from_secs(5)),
            Some(Some(0))
        );
    }
}
