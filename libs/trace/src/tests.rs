//! Tests of the record layout, the frame round trip and the decoder's
//! behaviour on split, damaged and random input.

extern crate std;

use alloc::vec::Vec;
use proptest::prelude::*;

use crate::*;

fn record(i: u64) -> Record {
    Record {
        tsc: 1_000 + i * 37,
        seq: i,
        call_id: i / 2 + 1,
        badge: 0xBAD6E,
        label: 7 + i,
        src: ThreadRef::new(3, 1),
        dst: ThreadRef::new(4, 2),
        endpoint: 9,
        len: 64,
        cpu: 1,
        status: (i % 3) as u16,
        kind: Kind::ALL[(i % 10) as usize],
        caps: 1,
        flags: Record::FLAG_FAST_PATH,
        items: (i % 4) as u8,
    }
}

fn max_record() -> Record {
    Record {
        tsc: u64::MAX,
        seq: u64::MAX,
        call_id: u64::MAX,
        badge: u64::MAX,
        label: u64::MAX,
        src: ThreadRef::new(u32::MAX, u32::MAX),
        dst: ThreadRef::new(u32::MAX, u32::MAX),
        endpoint: u32::MAX,
        len: u32::MAX,
        cpu: u16::MAX,
        status: u16::MAX,
        kind: Kind::Kill,
        caps: u8::MAX,
        flags: u8::MAX,
        items: u8::MAX,
    }
}

fn batch(cpu: u16, records: impl IntoIterator<Item = Record>) -> Frame {
    let mut v = heapless::Vec::new();
    for r in records {
        v.push(r).expect("batch fits");
    }
    Frame::Batch { cpu, records: v }
}

fn names() -> Frame {
    let mut entries = heapless::Vec::new();
    entries.push(NameEntry::new(NameKind::Thread, 3, 1, "process-server/1")).unwrap();
    entries.push(NameEntry::new(NameKind::Endpoint, 9, 0, "memory-server")).unwrap();
    entries.push(NameEntry::label(0x1_0000_0002, "RefBatch")).unwrap();
    // Cut at 32 bytes, on a character boundary (é is two bytes).
    entries.push(NameEntry::new(NameKind::Thread, 5, 0, "ééééééééééééééééé-too-long")).unwrap();
    Frame::Names { entries }
}

fn message(cpu: u16, seq: u64, payload: &[u8]) -> Frame {
    let payload = heapless::Vec::from_slice(payload).expect("payload fits");
    Frame::Message { cpu, seq, mrs: [3, 0, u64::MAX, 0x1234], payload }
}

fn every_frame() -> Vec<Frame> {
    alloc::vec![
        Frame::hello(2_000_000_000, 4),
        names(),
        batch(1, (0..BATCH_MAX as u64).map(record)),
        batch(0, []),
        Frame::Lost { cpu: 2, count: 12345 },
        message(1, 7, &[2, 0, 3, 0x81, 1, 1]),
        message(0, 0, &[]),
    ]
}

fn enc(frame: &Frame) -> Vec<u8> {
    let mut buf = [0u8; MAX_FRAME_LEN];
    let n = encode(frame, &mut buf).expect("fits in MAX_FRAME_LEN");
    buf[..n].to_vec()
}

fn stream(frames: &[Frame]) -> Vec<u8> {
    frames.iter().flat_map(enc).collect()
}

fn frames_of(items: &[Item]) -> Vec<Frame> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Frame(f) => Some(f.clone()),
            Item::Damage(_) => None,
        })
        .collect()
}

#[test]
fn record_layout() {
    assert_eq!(core::mem::size_of::<Record>(), 72);
    assert_eq!(core::mem::offset_of!(Record, src), 40);
    assert_eq!(core::mem::offset_of!(Record, cpu), 64);
    assert_eq!(core::mem::offset_of!(Record, items), 71);
}

#[test]
fn kind_names_round_trip() {
    for k in Kind::ALL {
        assert_eq!(Kind::from_name(k.name()), Some(k));
    }
    assert_eq!(Kind::from_name("nonsense"), None);
    assert!(Kind::Call.opens_call() && Kind::FaultDelivery.opens_call());
    assert!(Kind::ReplyRecv.closes_call() && !Kind::Recv.closes_call());
}

#[test]
fn name_is_cut_at_char_boundary() {
    let Frame::Names { entries } = names() else { unreachable!() };
    let cut = &entries[3].name;
    assert_eq!(cut.len(), 32);
    assert_eq!(cut.as_str(), "éééééééééééééééé");
    assert_eq!(entries[2].label_value(), 0x1_0000_0002);
}

#[test]
fn every_frame_round_trips() {
    for f in every_frame() {
        let bytes = enc(&f);
        assert_eq!(bytes.last(), Some(&0));
        assert!(!bytes[..bytes.len() - 1].contains(&0), "delimiter only at the end");
        let (items, stats) = decode_all(&bytes);
        assert_eq!(items, alloc::vec![Item::Frame(f)]);
        assert_eq!(stats, DecodeStats { frames: 1, bad_frames: 0, bytes_skipped: 0 });
    }
}

#[test]
fn worst_case_frames_fit_the_bound() {
    let full = batch(u16::MAX, core::iter::repeat_n(max_record(), BATCH_MAX));
    let bytes = enc(&full);
    assert!(bytes.len() <= MAX_FRAME_LEN);
    // The bound is tight enough to be useful: within the COBS slack.
    assert!(MAX_FRAME_LEN - bytes.len() < 16, "{} vs {}", bytes.len(), MAX_FRAME_LEN);
    let mut entries = heapless::Vec::new();
    for _ in 0..NAMES_MAX {
        let e = NameEntry::new(NameKind::Label, u32::MAX, u32::MAX, "0123456789abcdef0123456789abcdef");
        entries.push(e).unwrap();
    }
    assert!(enc(&Frame::Names { entries }).len() <= MAX_FRAME_LEN);
    assert_eq!(decode_all(&bytes).0, alloc::vec![Item::Frame(full)]);
    let whole = Frame::Message {
        cpu: u16::MAX,
        seq: u64::MAX,
        mrs: [u64::MAX; MESSAGE_REGISTERS],
        payload: heapless::Vec::from_slice(&[0xFF; MESSAGE_MAX]).unwrap(),
    };
    let bytes = enc(&whole);
    assert!(bytes.len() <= MAX_FRAME_LEN, "{} vs {}", bytes.len(), MAX_FRAME_LEN);
    assert_eq!(decode_all(&bytes).0, alloc::vec![Item::Frame(whole)]);
}

#[test]
fn a_borrowed_message_encodes_as_the_frame() {
    for payload in [&[][..], &[2, 0, 3, 0x81, 1, 1], &[0xFF; MESSAGE_MAX]] {
        let mrs = [3, 0, u64::MAX, 0x1234];
        let mut buf = [0u8; MAX_FRAME_LEN];
        let n = encode_message(9, 1 << 40, &mrs, payload, &mut buf).unwrap();
        let frame = Frame::Message { cpu: 9, seq: 1 << 40, mrs, payload: heapless::Vec::from_slice(payload).unwrap() };
        assert_eq!(&buf[..n], &enc(&frame)[..]);
    }
    // Longer than a frame holds: cut to MESSAGE_MAX.
    let mut buf = [0u8; MAX_FRAME_LEN];
    let n = encode_message(0, 0, &[0; 4], &[1; MESSAGE_MAX + 10], &mut buf).unwrap();
    assert!(matches!(&decode_all(&buf[..n]).0[..], [Item::Frame(Frame::Message { payload, .. })] if payload.len() == MESSAGE_MAX));
}

#[test]
fn formats_read() {
    assert!(reads_format(1) && reads_format(FORMAT_VERSION));
    assert!(!reads_format(0) && !reads_format(FORMAT_VERSION + 1));
    let r = Record { len: 32 + 6, flags: Record::FLAG_MESSAGE, ..Record::empty(Kind::Call) };
    assert!(r.has_message() && !r.fast_path());
    assert_eq!((r.payload_len(), Record::empty(Kind::Recv).payload_len()), (6, 0));
}

#[test]
fn short_buffer_is_an_error_not_a_panic() {
    for f in every_frame() {
        let need = enc(&f).len();
        for len in 0..need {
            let mut buf = alloc::vec![0u8; len];
            assert_eq!(encode(&f, &mut buf), Err(EncodeError::BufferFull), "len {len}");
        }
    }
}

#[test]
fn split_at_every_point() {
    let frames = every_frame();
    let bytes = stream(&frames);
    for cut in 0..=bytes.len() {
        let mut d = Decoder::new();
        let mut items = d.push(&bytes[..cut]);
        items.extend(d.push(&bytes[cut..]));
        assert_eq!(d.finish(), None);
        assert_eq!(frames_of(&items), frames, "cut at {cut}");
        assert_eq!(d.stats().bad_frames, 0);
    }
    // And one byte at a time.
    let mut d = Decoder::new();
    let mut items = Vec::new();
    for b in &bytes {
        items.extend(d.push(core::slice::from_ref(b)));
    }
    assert_eq!(frames_of(&items), frames);
}

#[test]
fn flipped_bytes_lose_only_their_frame() {
    let before = Frame::hello(1_000_000, 2);
    let victim = batch(1, (0..4).map(record));
    let after = Frame::Lost { cpu: 1, count: 3 };
    let tail = Frame::Lost { cpu: 0, count: 9 };
    let (a, v, c, t) = (enc(&before), enc(&victim), enc(&after), enc(&tail));
    for pos in 0..v.len() {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut bad = v.clone();
            bad[pos] ^= mask;
            let input: Vec<u8> = [a.as_slice(), &bad, &c, &t].concat();
            let (items, stats) = decode_all(&input);
            let got = frames_of(&items);
            let at = alloc::format!("pos {pos} mask {mask:#x}");
            assert_eq!(got.first(), Some(&before), "{at}");
            assert_eq!(got.last(), Some(&tail), "{at}");
            assert!(!got.contains(&victim), "damaged frame accepted: {at}");
            // A damaged delimiter joins the victim to the next frame, which is
            // lost with it; any other damage stays inside the victim.
            let delimiter = pos == v.len() - 1;
            assert_eq!(got.contains(&after), !delimiter, "{at}");
            assert!(stats.bad_frames >= 1 && stats.bytes_skipped >= 1);
        }
    }
}

#[test]
fn truncated_frames_are_reported() {
    let frames = every_frame();
    let mid = enc(&frames[2]);
    // Lose the middle of a frame but keep its delimiter.
    let cut: Vec<u8> = [&mid[..10], &mid[mid.len() - 5..]].concat();
    let input: Vec<u8> = [enc(&frames[0]), cut.clone(), enc(&frames[3])].concat();
    let (items, stats) = decode_all(&input);
    assert_eq!(frames_of(&items), alloc::vec![frames[0].clone(), frames[3].clone()]);
    assert_eq!(stats.bad_frames, 1);
    assert_eq!(stats.bytes_skipped, cut.len() as u64);

    // Lose the end of the stream.
    let input: Vec<u8> = [enc(&frames[0]), mid[..20].to_vec()].concat();
    let (items, stats) = decode_all(&input);
    let first_len = enc(&frames[0]).len() as u64;
    assert_eq!(
        items,
        alloc::vec![Item::Frame(frames[0].clone()), Item::Damage(Damage { offset: first_len, bytes: 20, reason: DamageReason::Truncated }),]
    );
    assert_eq!(stats.bytes_skipped, 20);
}

#[test]
fn garbage_between_frames_is_skipped() {
    let frames = every_frame();
    let mut input = alloc::vec![0x55, 0x13, 0x00, 0x00, 0x02, 0x00];
    for f in &frames {
        input.extend(enc(f));
        input.extend([0x07, 0x07, 0xFF, 0x00, 0x01, 0x00]);
    }
    let (items, stats) = decode_all(&input);
    assert_eq!(frames_of(&items), frames);
    assert!(stats.bad_frames >= 2);
    // Every damage report names a real place in the input.
    for i in &items {
        if let Item::Damage(d) = i {
            assert!(d.offset + d.bytes <= input.len() as u64);
        }
    }
}

#[test]
fn garbage_stuck_to_a_frame_costs_that_frame_only() {
    let (x, y) = (Frame::Lost { cpu: 0, count: 1 }, Frame::Lost { cpu: 0, count: 2 });
    let input: Vec<u8> = [alloc::vec![0x02, 0x31], enc(&x), enc(&y)].concat();
    let (items, stats) = decode_all(&input);
    assert_eq!(frames_of(&items), alloc::vec![y]);
    assert_eq!(stats.bad_frames, 1);
    assert_eq!(stats.bytes_skipped, enc(&x).len() as u64 + 2);
}

#[test]
fn oversize_run_is_dropped_with_bounded_memory() {
    let f = Frame::Lost { cpu: 0, count: 1 };
    let mut input = alloc::vec![0xAB; 3 * MAX_FRAME_LEN];
    input.push(0);
    input.extend(enc(&f));
    let mut d = Decoder::new();
    let mut items = Vec::new();
    for chunk in input.chunks(100) {
        items.extend(d.push(chunk));
    }
    assert_eq!(
        items,
        alloc::vec![
            Item::Damage(Damage { offset: 0, bytes: 3 * MAX_FRAME_LEN as u64 + 1, reason: DamageReason::Oversize }),
            Item::Frame(f),
        ]
    );
}

#[test]
fn wrong_body_with_good_crc_is_rejected() {
    // A body with a valid CRC that is not a frame: an unknown variant tag.
    let body = [9u8, 1, 2];
    let mut raw = body.to_vec();
    raw.extend(crc32(&body).to_le_bytes());
    let mut wire = alloc::vec![0u8; raw.len() + 2];
    let n = cobs::encode(&raw, &mut wire);
    wire.truncate(n);
    wire.push(0);
    let (items, _) = decode_all(&wire);
    assert!(matches!(items[..], [Item::Damage(Damage { reason: DamageReason::Body, .. })]));
}

#[test]
fn summary_counts_records_loss_and_damage() {
    let whole = stream(&[Frame::hello(1_000_000, 2), batch(1, (0..5).map(record)), names()]);
    let summary = Summary::of(&whole);
    assert_eq!((summary.records, summary.cpus, summary.lost(), summary.damaged_frames), (5, 1, 0, 0));
    assert!(summary.is_whole());

    // Records 5..=7 dropped: a gap and a Lost frame saying so count once.
    let mut bytes = stream(&[Frame::hello(1_000_000, 2), batch(1, (0..5).chain(8..10).map(record)), Frame::Lost { cpu: 1, count: 3 }]);
    let summary = Summary::of(&bytes);
    assert_eq!((summary.records, summary.missing, summary.lost_reported, summary.lost()), (7, 3, 3, 3));
    assert!(!summary.is_whole());

    bytes.extend_from_slice(&[7, 7, 7, 0]);
    assert_eq!(Summary::of(&bytes).damaged_frames, 1);
    let with_messages = Summary::of(&stream(&[message(1, 0, &[1, 2, 3]), message(1, 1, &[4])]));
    assert_eq!((with_messages.messages, with_messages.payload_bytes), (2, 4));
    assert!(!Summary::of(&stream(&[batch(1, (0..2).map(record))])).is_whole(), "no hello");
}

fn arb_record() -> impl Strategy<Value = Record> {
    (
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        (any::<(u32, u32)>(), any::<(u32, u32)>(), any::<u32>(), any::<u32>()),
        (any::<u16>(), any::<u16>(), 0usize..10, any::<u8>(), any::<u8>(), any::<u8>()),
    )
        .prop_map(|((tsc, seq, call_id, badge, label), (s, d, endpoint, len), (cpu, status, k, caps, flags, items))| Record {
            tsc,
            seq,
            call_id,
            badge,
            label,
            src: ThreadRef::new(s.0, s.1),
            dst: ThreadRef::new(d.0, d.1),
            endpoint,
            len,
            cpu,
            status,
            kind: Kind::ALL[k],
            caps,
            flags,
            items,
        })
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    prop_oneof![
        (any::<u16>(), any::<u64>(), any::<u16>()).prop_map(|(v, hz, cpus)| Frame::Hello { format_version: v, tsc_hz: hz, cpus }),
        (any::<u16>(), proptest::collection::vec(arb_record(), 0..=BATCH_MAX)).prop_map(|(cpu, rs)| batch(cpu, rs)),
        (any::<u16>(), any::<u64>()).prop_map(|(cpu, count)| Frame::Lost { cpu, count }),
        (any::<u16>(), any::<u64>(), any::<[u64; MESSAGE_REGISTERS]>(), proptest::collection::vec(any::<u8>(), 0..=MESSAGE_MAX))
            .prop_map(|(cpu, seq, mrs, bytes)| Frame::Message { cpu, seq, mrs, payload: heapless::Vec::from_slice(&bytes).unwrap() }),
        proptest::collection::vec((any::<u32>(), any::<u32>(), "[a-z/-]{0,40}"), 0..=NAMES_MAX).prop_map(|es| {
            let mut entries = heapless::Vec::new();
            for (id, g, n) in es {
                entries.push(NameEntry::new(NameKind::Thread, id, g, &n)).unwrap();
            }
            Frame::Names { entries }
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096),
                                   chunk in 1usize..300) {
        let mut d = Decoder::new();
        let mut skipped = 0u64;
        for c in bytes.chunks(chunk) {
            for item in d.push(c) {
                if let Item::Damage(dmg) = item {
                    prop_assert!(dmg.bytes > 0);
                    skipped += dmg.bytes;
                }
            }
        }
        if let Some(dmg) = d.finish() {
            skipped += dmg.bytes;
        }
        prop_assert_eq!(d.stats().bytes_skipped, skipped);
        prop_assert!(skipped <= bytes.len() as u64);
    }

    #[test]
    fn valid_frames_survive_noise(
        parts in proptest::collection::vec(
            prop_oneof![
                arb_frame().prop_map(Ok),
                proptest::collection::vec(any::<u8>(), 0..64).prop_map(Err),
            ],
            0..12),
        chunk in 1usize..200,
    ) {
        let mut input = Vec::new();
        let mut want = Vec::new();
        for p in &parts {
            match p {
                Ok(f) => {
                    input.extend(enc(f));
                    want.push(f.clone());
                }
                Err(noise) => {
                    // Noise ends at a delimiter, as a glitch on the line would be
                    // cut off by the next frame's start anyway.
                    input.extend(noise);
                    input.push(0);
                }
            }
        }
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for c in input.chunks(chunk) {
            got.extend(d.push(c));
        }
        prop_assert_eq!(d.finish(), None);
        prop_assert_eq!(frames_of(&got), want);
    }
}
