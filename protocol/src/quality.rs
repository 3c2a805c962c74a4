//! Call-quality shapes: a participant's quality now ([`CallQuality`], in `stats` and the server API) and over
//! its session ([`QualitySummary`], in the server API and the `room_finished` webhook). Unknown values are
//! `null`, never zero. Loss is in percent (0–100), times in milliseconds, bitrates in bits per second.

use serde::{Deserialize, Serialize};

/// One direction of a participant's media: uplink (what it sends the server) or downlink (what it receives).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkQuality {
    pub bitrate_bps: Option<u64>,
    pub loss_percent: Option<f64>,
    pub jitter_ms: Option<f64>,
}

/// A participant's call quality now.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallQuality {
    pub rtt_ms: Option<f64>,
    /// The worse of uplink and downlink.
    pub jitter_ms: Option<f64>,
    /// The worse of uplink and downlink.
    pub loss_percent: Option<f64>,
    /// What the participant sends the server.
    pub bitrate_in_bps: Option<u64>,
    /// What the server sends the participant.
    pub bitrate_out_bps: Option<u64>,
    /// E-model score, 1 (bad) to 4.5; `null` until RTT, jitter and loss are all known.
    pub mos: Option<f64>,
    pub uplink: LinkQuality,
    pub downlink: LinkQuality,
}

/// A participant's call quality over its session: means and extremes of one sample per second.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QualitySummary {
    pub duration_secs: f64,
    /// Seconds sampled.
    pub samples: u64,
    pub mos_mean: Option<f64>,
    pub mos_min: Option<f64>,
    pub rtt_mean_ms: Option<f64>,
    pub rtt_max_ms: Option<f64>,
    pub loss_percent_mean: Option<f64>,
    pub loss_percent_max: Option<f64>,
    pub jitter_mean_ms: Option<f64>,
    pub jitter_max_ms: Option<f64>,
    /// Bytes received from / sent to the participant (all traffic of both its connections).
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_values_are_null_and_names_are_camel_case() {
        let q = CallQuality {
            rtt_ms: Some(12.5),
            mos: Some(4.4),
            ..Default::default()
        };
        let v = serde_json::to_value(q).expect("serializes");
        assert_eq!(v["rttMs"], 12.5);
        assert_eq!(v["mos"], 4.4);
        assert!(v["lossPercent"].is_null());
        assert!(v["uplink"]["bitrateBps"].is_null());
        assert!(v.as_object().expect("object").contains_key("bitrateInBps"));
        let back: CallQuality = serde_json::from_value(v).expect("parses");
        assert_eq!(back, q);
        let s = serde_json::to_value(QualitySummary::default()).expect("serializes");
        assert_eq!(s["durationSecs"], 0.0);
        assert!(s["mosMean"].is_null());
        assert_eq!(s["bytesOut"], 0);
    }
}
