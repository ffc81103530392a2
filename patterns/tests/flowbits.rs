//! `flowbits` across packets of a flow, with an in-memory flow store:
//! set on one packet, checked on a later one of the same flow (not another),
//! unset/toggle, `|` lists, noalert, and setters running before readers.

mod common;

use common::{compile_ok, hits_with, tcp_with, Build};
use sandgate_matcher::MemoryFlowStore;

fn pkt(flow: u64, payload: &[u8]) -> common::Packet {
    tcp_with(
        &Build {
            flow_id: flow,
            ..Build::default()
        },
        payload,
    )
}

#[test]
fn set_then_isset_on_a_later_packet_of_the_same_flow_only() {
    let m = compile_ok(
        "alert tcp any any -> any any (content:\"login\"; flowbits:set,logged_in; flowbits:noalert; sid:1;)\n\
         alert tcp any any -> any any (content:\"cmd\"; flowbits:isset,logged_in; sid:2;)\n\
         alert tcp any any -> any any (content:\"cmd\"; flowbits:isnotset,logged_in; sid:3;)\n",
    );
    let mut store = MemoryFlowStore::default();
    assert_eq!(
        hits_with(&m, &pkt(7, b"cmd"), &mut store),
        vec![2],
        "not logged in yet"
    );
    assert_eq!(
        hits_with(&m, &pkt(7, b"login"), &mut store),
        Vec::<u32>::new(),
        "noalert"
    );
    assert_eq!(hits_with(&m, &pkt(7, b"cmd"), &mut store), vec![1]);
    assert_eq!(
        hits_with(&m, &pkt(8, b"cmd"), &mut store),
        vec![2],
        "another flow"
    );
    // No flow: neither isset nor isnotset holds.
    assert!(hits_with(&m, &pkt(0, b"cmd"), &mut store).is_empty());
}

#[test]
fn setter_runs_before_reader_on_the_same_packet() {
    // The reader comes first in the file; the setter must still run first.
    let m = compile_ok(
        "alert tcp any any -> any any (content:\"b\"; flowbits:isset,x; sid:1;)\n\
         alert tcp any any -> any any (content:\"a\"; flowbits:set,x; sid:2;)\n",
    );
    let mut store = MemoryFlowStore::default();
    assert_eq!(hits_with(&m, &pkt(1, b"ab"), &mut store), vec![0, 1]);
}

#[test]
fn unset_toggle_and_or_lists() {
    let m = compile_ok(
        "alert tcp any any -> any any (content:\"set\"; flowbits:set,a; noalert; sid:1;)\n\
         alert tcp any any -> any any (content:\"unset\"; flowbits:unset,a; noalert; sid:2;)\n\
         alert tcp any any -> any any (content:\"flip\"; flowbits:toggle,b; noalert; sid:3;)\n\
         alert tcp any any -> any any (content:\"check\"; flowbits:isset,a|b; sid:4;)\n\
         alert tcp any any -> any any (content:\"check\"; flowbits:isset,a; flowbits:isset,b; sid:5;)\n",
    );
    let mut s = MemoryFlowStore::default();
    let check = |s: &mut MemoryFlowStore| hits_with(&m, &pkt(3, b"check"), s);
    assert_eq!(check(&mut s), Vec::<u32>::new());
    hits_with(&m, &pkt(3, b"set"), &mut s);
    assert_eq!(check(&mut s), vec![3]);
    hits_with(&m, &pkt(3, b"flip"), &mut s);
    assert_eq!(check(&mut s), vec![3, 4]);
    hits_with(&m, &pkt(3, b"unset"), &mut s);
    assert_eq!(check(&mut s), vec![3]);
    hits_with(&m, &pkt(3, b"flip"), &mut s);
    assert_eq!(check(&mut s), Vec::<u32>::new());
    assert!(s.flows.is_empty(), "all-clear state is removed, not stored");
}

#[test]
fn state_from_another_numbering_reads_as_empty() {
    let m = compile_ok("alert tcp any any -> any any (flowbits:isset,x; sid:1;)\n");
    let mut s = MemoryFlowStore::default();
    s.flows.insert(1, vec![0xde, 0xad, 0xbe, 0xef, 0xff]);
    assert!(hits_with(&m, &pkt(1, b"z"), &mut s).is_empty());
}

#[test]
fn bad_flowbits_are_skipped() {
    for opts in [
        "flowbits:set;",
        "flowbits:set,a|b;",
        "flowbits:frob,a;",
        "flowbits:noalert,a;",
    ] {
        let c = common::compile(&format!("alert tcp any any -> any any ({opts} sid:1;)"));
        assert_eq!(c.skipped.len(), 1, "{opts}");
        assert!(
            c.skipped[0].to_string().contains("flowbits"),
            "{}",
            c.skipped[0]
        );
    }
}
