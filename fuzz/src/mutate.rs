//! A small deterministic mutator for the smoke runs: the same seed gives the same inputs on every machine, so a
//! failure in CI reproduces anywhere. libFuzzer does far better when it runs; this keeps every target exercised
//! by `cargo test` without it.

/// Edits that find parser bugs most often: flipped bits, boundary bytes, 16-bit lengths set to edge values,
/// truncation, appended junk, duplicated runs, and splices from another input.
#[derive(Debug, Clone)]
pub struct Mutator {
    state: u64,
}

const INTERESTING_BYTES: [u8; 8] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff, 0x20, 0x40];
const INTERESTING_U16: [u16; 7] = [0, 1, 0x7fff, 0x8000, 0xfffe, 0xffff, 1500];

impl Mutator {
    pub fn new(seed: u64) -> Mutator {
        Mutator { state: seed.max(1) }
    }

    /// xorshift64*: fast, and good enough to pick edits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// A mutated copy of `input` (one to four edits); `other` is spliced from now and then.
    pub fn mutate(&mut self, input: &[u8], other: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..=self.below(4) {
            self.edit(&mut out, other);
        }
        out
    }

    fn edit(&mut self, out: &mut Vec<u8>, other: &[u8]) {
        let len = out.len();
        match self.below(8) {
            0 if len > 0 => {
                let i = self.below(len);
                out[i] ^= 1 << self.below(8);
            }
            1 if len > 0 => {
                let i = self.below(len);
                out[i] = INTERESTING_BYTES[self.below(INTERESTING_BYTES.len())];
            }
            2 if len > 1 => {
                let i = self.below(len - 1);
                let v = INTERESTING_U16[self.below(INTERESTING_U16.len())].to_be_bytes();
                out[i..i + 2].copy_from_slice(&v);
            }
            3 => out.truncate(self.below(len + 1)),
            4 => {
                for _ in 0..=self.below(32) {
                    out.push(self.next_u64() as u8);
                }
            }
            5 if len > 0 => {
                let start = self.below(len);
                let end = start + self.below(len - start) + 1;
                let run = out[start..end].to_vec();
                let at = self.below(len + 1);
                out.splice(at..at, run);
            }
            6 if !other.is_empty() => {
                let start = self.below(other.len());
                let end = start + self.below(other.len() - start) + 1;
                let at = self.below(len + 1);
                out.truncate(at);
                out.extend_from_slice(&other[start..end]);
            }
            _ if len > 0 => {
                let i = self.below(len);
                out[i] = self.next_u64() as u8;
            }
            _ => out.push(self.next_u64() as u8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_inputs() {
        let (mut a, mut b) = (Mutator::new(7), Mutator::new(7));
        let input = b"a signaling message";
        for _ in 0..100 {
            assert_eq!(a.mutate(input, b"other"), b.mutate(input, b"other"));
        }
    }

    #[test]
    fn mutations_differ_from_the_input_and_from_each_other() {
        let mut m = Mutator::new(1);
        let input = [0x5au8; 64];
        let outs: Vec<Vec<u8>> = (0..200).map(|_| m.mutate(&input, &[1, 2, 3])).collect();
        let changed = outs.iter().filter(|o| o.as_slice() != input).count();
        assert!(
            changed > 180,
            "only {changed} of 200 mutations changed the input"
        );
        let mut distinct = outs.clone();
        distinct.sort();
        distinct.dedup();
        assert!(distinct.len() > 150, "only {} distinct", distinct.len());
    }
}
