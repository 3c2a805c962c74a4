//! VP8 picture numbering across source switches: reading a payload descriptor's PictureID and TL0PICIDX, and a
//! per-subscriber [`Vp8Rewriter`] that keeps them continuous when the forwarded source changes (another
//! simulcast layer, a republished track, a resumed mute), the way the [`crate::Forwarder`] keeps sequence
//! numbers and timestamps continuous. Without it a receiver may treat the new source's frames as old (its
//! picture ids run behind the previous source's) and freeze until the next keyframe.
//!
//! Pure logic; the bytes are patched by str0m at serialization (`RtpWrite::vp8_patch`), so the shared payload
//! is never copied for this.

/// The descriptor fields we rewrite, as found in one payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Vp8Fields {
    /// PictureID and whether it is the 15-bit form (else 7-bit).
    pub picture_id: Option<(u16, bool)>,
    pub tl0_pic_idx: Option<u8>,
}

/// Read PictureID and TL0PICIDX from a VP8 payload descriptor (RFC 7741 §4.2). `None` if malformed.
pub fn parse_fields(p: &[u8]) -> Option<Vp8Fields> {
    let b0 = *p.first()?;
    let mut fields = Vp8Fields::default();
    if b0 & 0x80 == 0 {
        return Some(fields);
    }
    let x = *p.get(1)?;
    let mut i = 2;
    if x & 0x80 != 0 {
        let m = *p.get(i)?;
        if m & 0x80 != 0 {
            let lo = *p.get(i + 1)?;
            fields.picture_id = Some((u16::from(m & 0x7f) << 8 | u16::from(lo), true));
            i += 2;
        } else {
            fields.picture_id = Some((u16::from(m), false));
            i += 1;
        }
    }
    if x & 0x40 != 0 {
        fields.tl0_pic_idx = Some(*p.get(i)?);
    }
    Some(fields)
}

#[derive(Debug, Clone, Copy)]
struct Anchor {
    ssrc: u32,
    picture_id_offset: u16,
    tl0_offset: u8,
}

/// Continuous PictureID/TL0PICIDX for one (subscriber, track).
#[derive(Debug, Clone, Default)]
pub struct Vp8Rewriter {
    anchor: Option<Anchor>,
    last_picture_id: Option<u16>,
    last_tl0: Option<u8>,
}

impl Vp8Rewriter {
    /// Re-anchor on the next packet (call whenever the forwarder re-anchors).
    pub fn reset(&mut self) {
        self.anchor = None;
    }

    /// The outgoing PictureID and TL0PICIDX for a packet of source `ssrc` that is being forwarded.
    pub fn rewrite(&mut self, ssrc: u32, fields: &Vp8Fields) -> (Option<u16>, Option<u8>) {
        let anchor = match self.anchor {
            Some(a) if a.ssrc == ssrc => a,
            _ => {
                let picture_id_offset = match (self.last_picture_id, fields.picture_id) {
                    (Some(last), Some((input, _))) => last.wrapping_add(1).wrapping_sub(input),
                    _ => 0,
                };
                let tl0_offset = match (self.last_tl0, fields.tl0_pic_idx) {
                    (Some(last), Some(input)) => last.wrapping_add(1).wrapping_sub(input),
                    _ => 0,
                };
                let a = Anchor {
                    ssrc,
                    picture_id_offset,
                    tl0_offset,
                };
                self.anchor = Some(a);
                a
            }
        };
        let picture_id = fields.picture_id.map(|(input, wide)| {
            let mask = if wide { 0x7fff } else { 0x7f };
            let out = input.wrapping_add(anchor.picture_id_offset) & mask;
            if self
                .last_picture_id
                .is_none_or(|last| ahead_of(out, last, mask))
            {
                self.last_picture_id = Some(out);
            }
            out
        });
        let tl0 = fields.tl0_pic_idx.map(|input| {
            let out = input.wrapping_add(anchor.tl0_offset);
            if self
                .last_tl0
                .is_none_or(|last| out.wrapping_sub(last) < 0x80)
            {
                self.last_tl0 = Some(out);
            }
            out
        });
        (picture_id, tl0)
    }
}

/// Whether `a` comes after `b` in a sequence that wraps at `mask + 1`.
fn ahead_of(a: u16, b: u16, mask: u16) -> bool {
    let diff = a.wrapping_sub(b) & mask;
    diff != 0 && diff <= mask / 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pic: u16, tl0: u8) -> Vp8Fields {
        Vp8Fields {
            picture_id: Some((pic, true)),
            tl0_pic_idx: Some(tl0),
        }
    }

    #[test]
    fn parses_descriptor_forms() {
        // X, I with 15-bit picture id 0x0123, L with TL0PICIDX 5.
        assert_eq!(
            parse_fields(&[0x90, 0xC0, 0x81, 0x23, 0x05, 0x10]),
            Some(fields(0x0123, 5))
        );
        // 7-bit picture id, no TL0PICIDX.
        assert_eq!(
            parse_fields(&[0x90, 0x80, 0x11, 0x10]),
            Some(Vp8Fields {
                picture_id: Some((0x11, false)),
                tl0_pic_idx: None
            })
        );
        assert_eq!(parse_fields(&[0x10, 0x00]), Some(Vp8Fields::default()));
        for bad in [&[][..], &[0x90], &[0x90, 0x80], &[0x90, 0xC0, 0x81]] {
            assert_eq!(parse_fields(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn identity_until_the_source_changes_then_continuous() {
        let mut r = Vp8Rewriter::default();
        assert_eq!(r.rewrite(1, &fields(500, 10)), (Some(500), Some(10)));
        assert_eq!(r.rewrite(1, &fields(501, 10)), (Some(501), Some(10)));
        assert_eq!(r.rewrite(1, &fields(502, 11)), (Some(502), Some(11)));
        // Another layer with numbering far behind: continues right after.
        assert_eq!(r.rewrite(2, &fields(90, 200)), (Some(503), Some(12)));
        assert_eq!(r.rewrite(2, &fields(91, 201)), (Some(504), Some(13)));
        // A reset on the same source re-anchors too.
        r.reset();
        assert_eq!(r.rewrite(2, &fields(400, 250)), (Some(505), Some(14)));
    }

    #[test]
    fn wraps_at_the_field_width() {
        let mut r = Vp8Rewriter::default();
        r.rewrite(1, &fields(0x7fff, 255));
        assert_eq!(r.rewrite(2, &fields(3, 3)), (Some(0), Some(0)));
        assert_eq!(r.rewrite(2, &fields(4, 4)), (Some(1), Some(1)));
        let mut short = Vp8Rewriter::default();
        let seven = |p| Vp8Fields {
            picture_id: Some((p, false)),
            tl0_pic_idx: None,
        };
        short.rewrite(1, &seven(127));
        assert_eq!(short.rewrite(2, &seven(50)), (Some(0), None));
    }
}
