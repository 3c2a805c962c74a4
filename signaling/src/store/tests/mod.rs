//! Store tests: the behaviour every backend must share (`behaviour.rs`), run on SQLite (`on_sqlite.rs`) and on a
//! throwaway Redis (`on_redis.rs`), plus what is particular to each backend.

use super::*;

mod behaviour;
mod on_redis;
mod on_sqlite;

fn identity(id: &str) -> Identity {
    Identity {
        id: id.into(),
        name: format!("{id} name"),
        metadata: "{}".into(),
        created_at: 1_700_000_000,
    }
}

fn delivery(endpoint: &str, room: &str, payload: &str) -> NewDelivery {
    NewDelivery {
        endpoint: endpoint.into(),
        room: room.into(),
        payload: payload.into(),
    }
}

fn chat(id: &str, text: &str) -> ChatMessage {
    ChatMessage {
        id: id.into(),
        timestamp: 1_700_000_000_000,
        identity: "alice".into(),
        name: "Alice".into(),
        text: text.into(),
        edited_at: None,
    }
}

fn ids(history: &[ChatMessage]) -> Vec<&str> {
    history.iter().map(|m| m.id.as_str()).collect()
}
