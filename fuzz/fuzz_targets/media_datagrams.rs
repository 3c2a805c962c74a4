//! libFuzzer entry point for datagrams into a media core with a live call (`chorus_fuzz::MediaCore`). The
//! first byte picks the sender (bit 0: a stranger instead of the publisher) and whether the rest is a datagram
//! of its own (bit 1 clear) or is XORed over one of the publisher's real datagrams (the second byte picks it),
//! so the fuzzer reaches past the demultiplexing. One call lives for the whole run; every 64th input checks
//! that it still forwards.
#![no_main]

use std::cell::RefCell;

use chorus_fuzz::MediaCore;

thread_local! {
    static CORE: RefCell<(MediaCore, u64)> = RefCell::new((MediaCore::new(), 0));
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    CORE.with(|cell| {
        let (core, inputs) = &mut *cell.borrow_mut();
        let from_publisher = mode & 1 == 0;
        let datagram = if mode & 2 == 0 {
            rest.to_vec()
        } else if let Some((&pick, xor)) = rest.split_first() {
            let seeds = core.seeds();
            let mut datagram = seeds[usize::from(pick) % seeds.len()].clone();
            for (d, x) in datagram.iter_mut().zip(xor) {
                *d ^= x;
            }
            datagram
        } else {
            return;
        };
        core.inject(from_publisher, &datagram);
        *inputs += 1;
        if *inputs % 64 == 0 {
            assert!(
                core.still_forwards(),
                "the call stopped: {:?} {}",
                core.failures(),
                core.counters()
            );
        }
    });
});
