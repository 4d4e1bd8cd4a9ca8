//! Fuzz body for the FLV demuxer and tag body parser.

use bytes::BytesMut;
use mediakit_core::flv::{FlvDemuxer, FlvError, FlvMuxer};
use mediakit_core::media::Media;
use mediakit_core::OutQueue;

type Items = Vec<Result<Media, FlvError>>;

/// Demuxes `stream` fed in reads of the given sizes (cycled), collecting items and the
/// latched framing error if any.
fn demux(stream: &[u8], reads: &[usize]) -> (Items, Option<FlvError>) {
    let mut demuxer = FlvDemuxer::with_max_tag_size(1 << 20);
    let mut input = BytesMut::new();
    let mut items = Vec::new();
    let mut rest = stream;
    let mut sizes = reads.iter().copied().cycle();
    while !rest.is_empty() {
        let n = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        let (read, tail) = rest.split_at(n);
        rest = tail;
        input.extend_from_slice(read);
        let result = demuxer.handle_input(&mut input);
        items.extend(std::iter::from_fn(|| demuxer.poll_media()));
        if let Err(error) = result {
            // Latched: the same error again, and nothing more comes out.
            assert_eq!(demuxer.handle_input(&mut input), Err(error.clone()));
            assert!(demuxer.poll_media().is_none());
            return (items, Some(error));
        }
    }
    (items, None)
}

/// The first byte picks read sizes, the rest is the FLV stream. Checks that the read split
/// changes nothing, and that re-muxing what was demuxed and demuxing it again gives the same
/// media (the muxer writes everything the demuxer yields in a form it reads back exactly).
pub fn flv_demux(data: &[u8]) {
    let Some((&split, stream)) = data.split_first() else {
        return;
    };
    let whole = demux(stream, &[stream.len().max(1)]);
    let reads = [usize::from(split % 17) + 1, usize::from(split / 17) + 1];
    let split_result = demux(stream, &reads);
    assert_eq!(whole, split_result, "read split changed the result");

    let media: Vec<Media> = whole.0.into_iter().filter_map(Result::ok).collect();
    let mut muxer = FlvMuxer::new(true, true);
    let mut arena = BytesMut::new();
    let mut out = OutQueue::new();
    for item in &media {
        muxer
            .write_media(item, &mut arena, &mut out)
            .expect("demuxed media fits a tag");
    }
    muxer.flush(&mut arena, &mut out);
    let remuxed: Vec<u8> = out.segments().flat_map(|s| s.iter().copied()).collect();
    let (again, error) = demux(&remuxed, &[7]);
    assert_eq!(error, None);
    let again: Vec<Media> = again
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("re-muxed media parses");
    assert_eq!(
        again, media,
        "mux(demux(x)) does not demux to the same media"
    );
}
