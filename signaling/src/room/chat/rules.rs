//! Chat rules, free of I/O and of the room: the settings, text checks, who may edit or delete what, the
//! per-identity rate limit and a room's in-memory history (the newest messages, edits and deletes applied).
//! `chat.rs` applies them to a room and its store.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chorus_protocol::{ChatMessage, ErrorCode, ErrorMessage};

pub const DEFAULT_HISTORY_SIZE: usize = 100;
pub const DEFAULT_MAX_TEXT_BYTES: usize = 4096;
pub const DEFAULT_RATE_PER_MINUTE: u32 = 60;
pub const DEFAULT_RATE_BURST: u32 = 10;
/// A `typing: true` nobody renewed ends after this long.
pub const TYPING_TIMEOUT: Duration = Duration::from_secs(6);
/// Typing changes beyond this burst (refilled at one per second) are ignored, so toggling cannot flood a room.
const TYPING_BURST: u32 = 10;

/// Chat limits of every room (from the server configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatSettings {
    /// Messages kept per room (and replayed to joiners).
    pub history_size: usize,
    /// Longest text, in bytes of UTF-8.
    pub max_text_bytes: usize,
    /// Sends, edits and deletes per identity and minute, on average; 0 = no limit.
    pub rate_per_minute: u32,
    /// How many of those may come at once.
    pub rate_burst: u32,
}

impl Default for ChatSettings {
    fn default() -> Self {
        ChatSettings {
            history_size: DEFAULT_HISTORY_SIZE,
            max_text_bytes: DEFAULT_MAX_TEXT_BYTES,
            rate_per_minute: DEFAULT_RATE_PER_MINUTE,
            rate_burst: DEFAULT_RATE_BURST,
        }
    }
}

/// Why a chat request was refused; each maps to a stable protocol code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChatError {
    #[error("this participant may not chat (no canChat grant, or hidden)")]
    NotAllowed,
    #[error("chat text is empty")]
    Empty,
    #[error("chat text is {len} bytes; the limit is {max}")]
    TooLong { len: usize, max: usize },
    #[error("no chat message with this id in the room's history")]
    UnknownMessage,
    #[error("this chat message is someone else's")]
    NotAuthor,
    #[error("too many chat messages; slow down")]
    RateLimited,
}

impl ChatError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ChatError::NotAllowed => ErrorCode::PermissionDenied,
            ChatError::Empty => ErrorCode::ChatEmpty,
            ChatError::TooLong { .. } => ErrorCode::ChatTooLong,
            ChatError::UnknownMessage => ErrorCode::ChatUnknownMessage,
            ChatError::NotAuthor => ErrorCode::ChatNotAuthor,
            ChatError::RateLimited => ErrorCode::ChatRateLimited,
        }
    }

    pub fn to_message(&self, nonce: Option<String>) -> ErrorMessage {
        ErrorMessage::new(self.code(), self.to_string()).with_nonce(nonce)
    }
}

/// Checks a text to send or to edit in.
pub fn check_text(text: &str, max_bytes: usize) -> Result<(), ChatError> {
    if text.trim().is_empty() {
        return Err(ChatError::Empty);
    }
    if text.len() > max_bytes {
        return Err(ChatError::TooLong {
            len: text.len(),
            max: max_bytes,
        });
    }
    Ok(())
}

/// A token bucket: `burst` tokens, refilled at `per_sec`.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    burst: f64,
    per_sec: f64,
    last: Instant,
}

impl Bucket {
    pub fn new(burst: u32, per_sec: f64, now: Instant) -> Bucket {
        let burst = f64::from(burst.max(1));
        Bucket {
            tokens: burst,
            burst,
            per_sec,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        self.last = now;
    }

    /// Takes a token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full again (nothing to remember about its owner).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }
}

/// The rate limits of one identity in one room.
#[derive(Debug, Clone)]
pub struct Limits {
    messages: Option<Bucket>,
    typing: Bucket,
}

impl Limits {
    pub fn new(settings: &ChatSettings, now: Instant) -> Limits {
        Limits {
            messages: (settings.rate_per_minute > 0).then(|| {
                Bucket::new(
                    settings.rate_burst,
                    f64::from(settings.rate_per_minute) / 60.0,
                    now,
                )
            }),
            typing: Bucket::new(TYPING_BURST, 1.0, now),
        }
    }

    /// Counts a send, edit or delete; [`ChatError::RateLimited`] past the limit.
    pub fn message(&mut self, now: Instant) -> Result<(), ChatError> {
        match self.messages.as_mut().map(|bucket| bucket.try_take(now)) {
            Some(false) => Err(ChatError::RateLimited),
            _ => Ok(()),
        }
    }

    /// Counts a typing change; false when it should be ignored.
    pub fn typing(&mut self, now: Instant) -> bool {
        self.typing.try_take(now)
    }

    pub fn is_idle(&mut self, now: Instant) -> bool {
        self.typing.is_full(now) && self.messages.as_mut().is_none_or(|b| b.is_full(now))
    }
}

/// A room's recent messages, oldest first, at most `keep`.
#[derive(Debug, Clone, Default)]
pub struct History {
    messages: VecDeque<ChatMessage>,
    keep: usize,
}

impl History {
    pub fn new(keep: usize, messages: Vec<ChatMessage>) -> History {
        let mut history = History {
            messages: messages.into(),
            keep,
        };
        history.trim();
        history
    }

    fn trim(&mut self) {
        while self.messages.len() > self.keep {
            self.messages.pop_front();
        }
    }

    pub fn push(&mut self, message: ChatMessage) {
        self.messages.push_back(message);
        self.trim();
    }

    pub fn messages(&self) -> Vec<ChatMessage> {
        self.messages.iter().cloned().collect()
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// `identity` replaces the text of its message `id` (already checked); the message as edited.
    pub fn edit(
        &mut self,
        id: &str,
        identity: &str,
        text: String,
        now_ms: u64,
    ) -> Result<ChatMessage, ChatError> {
        let message = self
            .messages
            .iter_mut()
            .find(|m| m.id == id)
            .ok_or(ChatError::UnknownMessage)?;
        if message.identity != identity {
            return Err(ChatError::NotAuthor);
        }
        message.text = text;
        message.edited_at = Some(now_ms);
        Ok(message.clone())
    }

    /// Whether `identity` (a room admin when `admin`) may delete `id`.
    pub fn check_delete(&self, id: &str, identity: &str, admin: bool) -> Result<(), ChatError> {
        let message = self
            .messages
            .iter()
            .find(|m| m.id == id)
            .ok_or(ChatError::UnknownMessage)?;
        if message.identity != identity && !admin {
            return Err(ChatError::NotAuthor);
        }
        Ok(())
    }

    pub fn remove(&mut self, id: &str) {
        self.messages.retain(|m| m.id != id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, identity: &str) -> ChatMessage {
        ChatMessage {
            id: id.into(),
            timestamp: 1,
            identity: identity.into(),
            name: identity.into(),
            text: "t".into(),
            edited_at: None,
        }
    }

    #[test]
    fn text_must_be_non_blank_and_within_the_limit() {
        assert_eq!(check_text("", 10), Err(ChatError::Empty));
        assert_eq!(check_text(" \n\t", 10), Err(ChatError::Empty));
        assert_eq!(check_text("0123456789", 10), Ok(()));
        assert_eq!(
            check_text("01234567890", 10),
            Err(ChatError::TooLong { len: 11, max: 10 })
        );
        // The limit counts UTF-8 bytes: 4 × 3 bytes.
        assert!(check_text("€€€€", 10).is_err());
        assert_eq!(
            ChatError::TooLong { len: 1, max: 0 }.code(),
            ErrorCode::ChatTooLong
        );
        assert_eq!(ChatError::NotAllowed.code(), ErrorCode::PermissionDenied);
    }

    #[test]
    fn history_keeps_the_newest_and_only_authors_edit() {
        let mut h = History::new(2, vec![msg("a", "x"), msg("b", "x"), msg("c", "y")]);
        assert_eq!(h.len(), 2, "trimmed on load");
        h.push(msg("d", "y"));
        let ids: Vec<String> = h.messages().into_iter().map(|m| m.id).collect();
        assert_eq!(ids, ["c", "d"]);
        assert_eq!(
            h.edit("c", "x", "no".into(), 5),
            Err(ChatError::NotAuthor),
            "x did not write c"
        );
        assert_eq!(
            h.edit("a", "x", "gone".into(), 5),
            Err(ChatError::UnknownMessage)
        );
        let edited = h.edit("c", "y", "new".into(), 7).expect("author edits");
        assert_eq!((edited.text.as_str(), edited.edited_at), ("new", Some(7)));
        assert_eq!(h.messages()[0].text, "new");
    }

    #[test]
    fn delete_needs_the_author_or_an_admin() {
        let mut h = History::new(10, vec![msg("a", "x")]);
        assert_eq!(h.check_delete("a", "y", false), Err(ChatError::NotAuthor));
        assert_eq!(h.check_delete("a", "y", true), Ok(()));
        assert_eq!(h.check_delete("a", "x", false), Ok(()));
        assert_eq!(
            h.check_delete("z", "x", true),
            Err(ChatError::UnknownMessage)
        );
        h.remove("a");
        assert_eq!(h.len(), 0);
    }

    #[test]
    fn the_rate_limit_allows_a_burst_then_refills() {
        let settings = ChatSettings {
            rate_per_minute: 60,
            rate_burst: 3,
            ..ChatSettings::default()
        };
        let t0 = Instant::now();
        let mut limits = Limits::new(&settings, t0);
        for _ in 0..3 {
            assert_eq!(limits.message(t0), Ok(()));
        }
        assert_eq!(limits.message(t0), Err(ChatError::RateLimited));
        assert!(!limits.is_idle(t0));
        // One per second comes back.
        let t1 = t0 + Duration::from_millis(1100);
        assert_eq!(limits.message(t1), Ok(()));
        assert_eq!(limits.message(t1), Err(ChatError::RateLimited));
        assert!(limits.is_idle(t1 + Duration::from_secs(10)));
    }

    #[test]
    fn zero_per_minute_means_no_limit_but_typing_is_still_bounded() {
        let settings = ChatSettings {
            rate_per_minute: 0,
            ..ChatSettings::default()
        };
        let t0 = Instant::now();
        let mut limits = Limits::new(&settings, t0);
        for _ in 0..1000 {
            assert_eq!(limits.message(t0), Ok(()));
        }
        let allowed = (0..100).filter(|_| limits.typing(t0)).count();
        assert_eq!(allowed, TYPING_BURST as usize);
    }
}
