//! The provenance record (kind 5, format 2.1): what a derived trace was made
//! from. `ttalloc minimize` writes one right after the header so `info`
//! can say "minimised from run.zst (1,000,000 events), keeps: leak of DRAM
//! at extend (kv_cache.py:15)". A 2.0 reader skips it like any record kind
//! it does not know.

use rancor::BoxedError;
use rkyv::{Archive, Deserialize, Serialize};

/// What a trace was derived from, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Provenance {
    /// The source trace's file name.
    pub source: String,
    /// How many events the source held.
    pub source_events: u64,
    /// The finding the derived trace keeps, in words.
    pub finding: String,
    /// The ttalloc version that derived it.
    pub ttalloc_version: String,
}

/// The archived form (layout fixed once released: new data goes into new fields of a new record kind).
#[derive(Archive, Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct ProvenanceRec {
    pub source: String,
    pub source_events: u64,
    pub finding: String,
    pub ttalloc_version: String,
}

pub(crate) fn encode(p: &Provenance) -> Result<rkyv::util::AlignedVec, String> {
    let rec = ProvenanceRec {
        source: p.source.clone(),
        source_events: p.source_events,
        finding: p.finding.clone(),
        ttalloc_version: p.ttalloc_version.clone(),
    };
    rkyv::to_bytes::<BoxedError>(&rec).map_err(|e| e.to_string())
}

/// Validates and reads a provenance payload.
pub(crate) fn decode(payload: &[u8]) -> Result<Provenance, String> {
    let r = rkyv::access::<ArchivedProvenanceRec, BoxedError>(payload)
        .map_err(|e| format!("provenance archive: {e}"))?;
    Ok(Provenance {
        source: r.source.to_string(),
        source_events: r.source_events.to_native(),
        finding: r.finding.to_string(),
        ttalloc_version: r.ttalloc_version.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let p = Provenance {
            source: "run.zst".into(),
            source_events: 1_000_000,
            finding: "leak of DRAM at extend (kv_cache.py:15)".into(),
            ttalloc_version: "0.1.0".into(),
        };
        let bytes = encode(&p).unwrap();
        assert_eq!(decode(&bytes).unwrap(), p);
        assert!(decode(&[1, 2, 3]).is_err());
    }

    fn sample() -> Provenance {
        Provenance {
            source: "big.zst".into(),
            source_events: 42,
            finding: "oom of L1 (12582912 B) at grow (w.py:27)".into(),
            ttalloc_version: "9.9.9".into(),
        }
    }

    fn one_event() -> ttalloc_model::Event {
        ttalloc_model::Event {
            ts: 1,
            pid: ttalloc_model::Pid(1),
            kind: ttalloc_model::EventKind::OpEnd,
        }
    }

    #[test]
    fn frame_one_is_read_back_by_the_indexed_and_the_scanning_reader() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.zst");
        let header = crate::TraceHeader::new(vec!["x".into()], "h".into());
        let mut w = crate::TraceWriter::create(&path, header.clone(), Default::default()).unwrap();
        w.write_provenance(&sample()).unwrap();
        w.push(&one_event()).unwrap();
        w.finish().unwrap();
        let r = crate::TraceReader::open(&path).unwrap();
        assert_eq!(r.provenance(), Some(&sample()));
        assert_eq!(r.num_events(), 1);
        assert!(r.warnings().is_empty());
        // Unfinished: the frame scan skips the record and still reads it.
        let bytes = std::fs::read(&path).unwrap();
        let cut = dir.path().join("cut.zst");
        let footer_and_table = 200.min(bytes.len() / 4);
        std::fs::write(&cut, &bytes[..bytes.len() - footer_and_table]).unwrap();
        let r = crate::TraceReader::open(&cut).unwrap();
        assert!(r.truncation().is_some());
        assert_eq!(r.provenance(), Some(&sample()));
        // A trace without one says so.
        let plain = dir.path().join("plain.zst");
        let mut w = crate::TraceWriter::create(&plain, header.clone(), Default::default()).unwrap();
        w.push(&one_event()).unwrap();
        w.finish().unwrap();
        assert_eq!(crate::TraceReader::open(&plain).unwrap().provenance(), None);
        // It must precede every event.
        let late = dir.path().join("late.zst");
        let mut w = crate::TraceWriter::create(&late, header, Default::default()).unwrap();
        w.push(&one_event()).unwrap();
        w.seal().unwrap();
        assert!(w
            .write_provenance(&sample())
            .unwrap_err()
            .to_string()
            .contains("before any event"));
    }
}
