//! The rooms' active speakers, re-evaluated on the simulcast tick from each audio track's speech detector
//! (`crate::speakers`), announced as [`Event::ActiveSpeakers`] when the set changes. Allocation (`simulcast.rs`)
//! serves an active speaker's video first, like a pinned one.

use std::collections::HashMap;
use std::time::Instant;

use super::WorkerCore;
use crate::api::{Event, MediaKind, ParticipantKey, RoomKey};

impl WorkerCore {
    pub(super) fn update_speakers(&mut self, now: Instant) {
        let mut speaking: HashMap<RoomKey, Vec<(ParticipantKey, u8)>> = HashMap::new();
        for route in self.tracks.values_mut() {
            if route.kind != MediaKind::Audio {
                continue;
            }
            // A muted track sends silence (or nothing): it is not speaking.
            let level = if route.muted {
                None
            } else {
                route.speech.speaking(now)
            };
            let room = speaking.entry(route.room).or_default();
            if let Some(level) = level {
                // A participant with two audio tracks counts once, at its louder one.
                match room.iter_mut().find(|(pk, _)| *pk == route.publisher) {
                    Some(entry) => entry.1 = entry.1.max(level),
                    None => room.push((route.publisher, level)),
                }
            }
        }
        let keys: Vec<RoomKey> = self.rooms.keys().copied().collect();
        for key in keys {
            let now_speaking = speaking.remove(&key).unwrap_or_default();
            let Some(room) = self.rooms.get_mut(&key) else {
                continue;
            };
            if room.speakers.update(now, now_speaking) {
                let speakers = room.speakers.list();
                self.emit(key, Event::ActiveSpeakers { speakers });
            }
        }
    }

    /// `pk` left `room`: it stops being an active speaker at once.
    pub(super) fn forget_speaker(&mut self, room: RoomKey, pk: ParticipantKey) {
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        if r.speakers.remove(pk) {
            let speakers = r.speakers.list();
            self.emit(room, Event::ActiveSpeakers { speakers });
        }
    }
}
