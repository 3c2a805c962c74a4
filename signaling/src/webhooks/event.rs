//! Room events as CloudEvents 1.0 (structured JSON mode, `application/cloudevents+json`): `specversion`, a unique
//! `id` (kept across retries so receivers can deduplicate), `source`, `type` (`room_started`, `room_finished`,
//! `participant_joined`, `participant_left`, `track_published`, `track_unpublished`), `subject` (the room name),
//! `time` (RFC 3339, UTC) and `data`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::room::{ParticipantQuality, ParticipantRef, RoomEvent, RoomRef};

/// `source` of every event.
pub const SOURCE: &str = "/chorus";

pub fn type_name(event: &RoomEvent) -> &'static str {
    match event {
        RoomEvent::RoomStarted { .. } => "room_started",
        RoomEvent::RoomFinished { .. } => "room_finished",
        RoomEvent::ParticipantJoined { .. } => "participant_joined",
        RoomEvent::ParticipantLeft { .. } => "participant_left",
        RoomEvent::TrackPublished { .. } => "track_published",
        RoomEvent::TrackUnpublished { .. } => "track_unpublished",
    }
}

fn room(r: &RoomRef) -> Value {
    json!({"name": r.name, "sid": r.sid})
}

fn participant(p: &ParticipantRef) -> Value {
    json!({"sid": p.sid, "identity": p.identity, "name": p.name})
}

/// A participant of a finished room: who, and its call quality over the session (`null` if never measured).
fn finished_participant(p: &ParticipantQuality) -> Value {
    let mut v = participant(&p.participant);
    v["quality"] = serde_json::to_value(p.quality).unwrap_or(Value::Null);
    v
}

fn data(event: &RoomEvent) -> Value {
    match event {
        RoomEvent::RoomStarted { room: r } => json!({"room": room(r)}),
        RoomEvent::RoomFinished {
            room: r,
            duration_secs,
            participants_total,
            participants,
        } => json!({
            "room": room(r),
            "durationSecs": duration_secs,
            "participantsTotal": participants_total,
            "participants": participants.iter().map(finished_participant).collect::<Vec<_>>(),
        }),
        RoomEvent::ParticipantJoined {
            room: r,
            participant: p,
        } => json!({"room": room(r), "participant": participant(p)}),
        RoomEvent::ParticipantLeft {
            room: r,
            participant: p,
            reason,
        } => json!({"room": room(r), "participant": participant(p), "reason": reason}),
        RoomEvent::TrackPublished {
            room: r,
            participant: p,
            track,
        }
        | RoomEvent::TrackUnpublished {
            room: r,
            participant: p,
            track,
        } => json!({"room": room(r), "participant": participant(p), "track": track}),
    }
}

/// The CloudEvent for `event`, happening at `at`.
pub fn cloud_event(event: &RoomEvent, id: &str, at: SystemTime) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": SOURCE,
        "type": type_name(event),
        "subject": event.room().name,
        "time": rfc3339(at),
        "datacontenttype": "application/json",
        "data": data(event),
    })
}

/// `2024-05-01T12:34:56.789Z`.
pub fn rfc3339(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        // A leap day.
        let t = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn events_are_cloudevents() {
        let ev = RoomEvent::ParticipantLeft {
            room: RoomRef {
                name: "r".into(),
                sid: "RM_1".into(),
            },
            participant: ParticipantRef {
                sid: "PA_1".into(),
                identity: "alice".into(),
                name: "Alice".into(),
            },
            reason: "left".into(),
        };
        let v = cloud_event(&ev, "evt-1", UNIX_EPOCH);
        assert_eq!(v["specversion"], "1.0");
        assert_eq!(v["id"], "evt-1");
        assert_eq!(v["type"], "participant_left");
        assert_eq!(v["subject"], "r");
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["data"]["participant"]["identity"], "alice");
        assert_eq!(v["data"]["reason"], "left");
        assert_eq!(v["data"]["room"]["sid"], "RM_1");
    }

    #[test]
    fn room_finished_lists_participants_with_their_quality() {
        let who = |n: &str| ParticipantRef {
            sid: format!("PA_{n}"),
            identity: n.into(),
            name: n.into(),
        };
        let ev = RoomEvent::RoomFinished {
            room: RoomRef {
                name: "r".into(),
                sid: "RM_1".into(),
            },
            duration_secs: 30,
            participants_total: 2,
            participants: vec![
                ParticipantQuality {
                    participant: who("alice"),
                    quality: Some(chorus_protocol::QualitySummary {
                        duration_secs: 29.5,
                        samples: 29,
                        mos_mean: Some(4.38),
                        ..Default::default()
                    }),
                },
                ParticipantQuality {
                    participant: who("bob"),
                    quality: None,
                },
            ],
        };
        let v = cloud_event(&ev, "evt-2", UNIX_EPOCH);
        assert_eq!(v["type"], "room_finished");
        let p = &v["data"]["participants"];
        assert_eq!(p[0]["identity"], "alice");
        assert_eq!(p[0]["sid"], "PA_alice");
        assert_eq!(p[0]["quality"]["mosMean"], 4.38);
        assert_eq!(p[0]["quality"]["samples"], 29);
        assert!(p[0]["quality"]["rttMeanMs"].is_null());
        assert!(p[1]["quality"].is_null());
        assert_eq!(v["data"]["participantsTotal"], 2);
    }
}
