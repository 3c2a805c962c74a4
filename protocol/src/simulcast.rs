//! Shapes for simulcast control: what a subscriber asks of a track, and the per-subscription state the server
//! reports back in `stats` (with the participant's call quality, `quality.rs`).

use serde::{Deserialize, Serialize};

/// The receive quality a subscriber asks for: the lowest, middle or top simulcast layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum VideoQuality {
    Low,
    Medium,
    High,
}

/// Why a subscription receives less than the top layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LayerReason {
    /// It receives what was asked for (quality or rendered size).
    Requested,
    /// The subscriber's downlink estimate cannot carry more (or any, when paused).
    Bandwidth,
    /// The publisher is not sending the wanted layer now.
    Unavailable,
}

/// One received track's simulcast state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionStats {
    pub track_sid: String,
    /// The layer (`rid`, or `"0"` without simulcast) being forwarded; absent while nothing is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_layer: Option<String>,
    /// The layer being switched to (the same as `currentLayer` when settled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_layer: Option<String>,
    /// The highest layer the subscriber asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wanted_layer: Option<String>,
    pub reason: LayerReason,
    /// Paused because the downlink cannot carry even the lowest layer.
    pub paused: bool,
    pub layer_switches: u64,
}

/// The answer to `getStats`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantStats {
    /// The server's estimate of this participant's downlink, in bits per second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub estimate_bps: Option<u64>,
    pub subscriptions: Vec<SubscriptionStats>,
    /// This participant's call quality as the server measures it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<crate::quality::CallQuality>,
}
