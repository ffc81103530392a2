//! Frame bytes → decoded headers for every link type, never a panic or an
//! out-of-range slice. The first byte picks the link type.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sandgate_host::capture::LinkType;
use sandgate_host::decode::decode;

const LINK_TYPES: [LinkType; 8] = [
    LinkType::ETHERNET,
    LinkType::RAW,
    LinkType::RAW_12,
    LinkType::RAW_14,
    LinkType::NULL,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::LINUX_SLL2,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else {
        return;
    };
    let linktype = LINK_TYPES[usize::from(pick) % LINK_TYPES.len()];
    if let Ok(d) = decode(linktype, frame) {
        // Every range the decoder hands out lies inside the frame.
        assert!(frame.get(d.l3.clone()).is_some(), "l3 {:?}", d.l3);
        assert!(
            frame.get(d.payload.clone()).is_some(),
            "payload {:?}",
            d.payload
        );
        assert!(d.l4_offset <= frame.len(), "l4 {}", d.l4_offset);
    }
});
