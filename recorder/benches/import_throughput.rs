//! Graph-import throughput: generates a large ttnn graph capture (newer
//! format: integer params, `arguments` strings, a report object with device
//! info) and times `import_graph` over it, once into a counting sink (parse +
//! convert) and once into a real trace file.
//!
//! `cargo bench -p ttalloc-recorder --bench import_throughput`
//! (`TTALLOC_BENCH_MB=N` sets the JSON size, default 256). Target: >= 100 MB/s.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;
use std::time::Instant;
use ttalloc_model::{Event, InternTables};
use ttalloc_recorder::import::{import_graph, EventSink, ImportOptions, SinkError};

/// Counts events; keeps nothing.
#[derive(Default)]
struct CountingSink {
    interner: InternTables,
    events: u64,
}

impl EventSink for CountingSink {
    fn interner_mut(&mut self) -> &mut InternTables {
        &mut self.interner
    }
    fn push(&mut self, _event: &Event) -> Result<(), SinkError> {
        self.events += 1;
        Ok(())
    }
}

/// Writes one "op": a function_start with two input tensors, an output
/// buffer allocated, a CB pair, an intermediate buffer allocated and freed,
/// the previous op's output freed. Returns the next counter.
fn write_op(out: &mut impl Write, c: u64, op: u64) -> std::io::Result<u64> {
    let name = [
        "ttnn::matmul",
        "ttnn::add",
        "ttnn::softmax",
        "ttnn::layer_norm",
    ][(op % 4) as usize];
    let addr = 1_000_000 + (op % 1000) * 65536;
    let args = "Tensor(storage=DeviceStorage(),tensor_spec=TensorSpec(logical_shape=Shape([1, 1, 1024, 1024]),tensor_layout=TensorLayout(dtype=DataType::BFLOAT16,page_config=PageConfig(config=TilePageConfig(tile=Tile(tile_shape={32, 32},face_shape={16, 16},num_faces=4))),memory_config=MemoryConfig(memory_layout=TensorMemoryLayout::INTERLEAVED,buffer_type=BufferType::DRAM,shard_spec=std::nullopt,nd_shard_spec=std::nullopt,created_with_nd_shard_spec=0),alignment=Alignment([32, 32]))))";
    writeln!(
        out,
        r#",{{"arguments":["{args}","{args}"],"connections":[{},{}],"counter":{c},"input_tensors":[{},{}],"node_type":"function_start","params":{{"inputs":"2","name":"{name}"}},"stacking_level":1}}"#,
        c + 1,
        c + 2,
        c + 1,
        c + 2
    )?;
    writeln!(
        out,
        r#",{{"arguments":[],"connections":[{c}],"counter":{},"input_tensors":[],"node_type":"tensor","params":{{"dtype":"DataType::BFLOAT16","layout":"Layout::TILE","shape":"Shape([1, 1, 1024, 1024])","size":2097152,"tensor_id":{op}}},"stacking_level":1}}"#,
        c + 1
    )?;
    writeln!(
        out,
        r#",{{"arguments":[],"connections":[{c}],"counter":{},"input_tensors":[],"node_type":"buffer","params":{{"buffer_type_value":0,"device_id":0,"layout":"INTERLEAVED","size":2097152,"type":"DRAM"}},"stacking_level":1}}"#,
        c + 2
    )?;
    writeln!(
        out,
        r#",{{"arguments":[],"connections":[{}],"counter":{},"input_tensors":[],"node_type":"buffer_allocate","params":{{"address":{addr},"buffer_type_value":0,"device_id":0,"layout":"INTERLEAVED","max_size_per_bank":174784,"num_cores":0,"page_size":2048,"size":2097152,"type":"DRAM"}},"stacking_level":1}}"#,
        c + 2,
        c + 3
    )?;
    writeln!(
        out,
        r#",{{"arguments":[],"connections":[],"counter":{},"input_tensors":[],"node_type":"circular_buffer_allocate","params":{{"address":102432,"core_range_set":"{{[(x=0,y=0) - (x=7,y=7)]}}","device_id":0,"globally_allocated":"0","size":8192}},"stacking_level":2}}"#,
        c + 4
    )?;
    writeln!(
        out,
        r#",{{"arguments":[],"connections":[],"counter":{},"input_tensors":[],"node_type":"buffer","params":{{"buffer_type_value":1,"device_id":0,"layout":"INTERLEAVED","size":65536,"type":"L1"}},"stacking_level":2}}"#,
        c + 5
    )?;
    writeln!(
        out,
        r#",{{"arguments":[],"connections":[{}],"counter":{},"input_tensors":[],"node_type":"buffer_allocate","params":{{"address":1400000,"buffer_type_value":1,"device_id":0,"layout":"INTERLEAVED","max_size_per_bank":1024,"num_cores":0,"page_size":2048,"size":65536,"type":"L1"}},"stacking_level":2}}"#,
        c + 5,
        c + 6
    )?;
    writeln!(
        out,
        r#",{{"arguments":[],"connections":[{}],"counter":{},"input_tensors":[],"node_type":"buffer_deallocate","params":{{"address":1400000,"buffer_type_value":1,"device_id":0,"layout":"INTERLEAVED","num_cores":0,"page_size":2048,"size":65536,"type":"L1"}},"stacking_level":2}}"#,
        c + 5,
        c + 7
    )?;
    writeln!(
        out,
        r#",{{"arguments":[],"connections":[{c}],"counter":{},"input_tensors":[],"node_type":"circular_buffer_deallocate_all","params":{{"device_id":0}},"stacking_level":2}}"#,
        c + 8
    )?;
    if op > 0 {
        // Free the previous op's output (its buffer node is 10 counters back).
        writeln!(
            out,
            r#",{{"arguments":[],"connections":[{}],"counter":{},"input_tensors":[],"node_type":"buffer_deallocate","params":{{"address":0,"buffer_type_value":0,"device_id":0,"layout":"INTERLEAVED","num_cores":0,"page_size":2048,"size":2097152,"type":"DRAM"}},"stacking_level":1}}"#,
            c - 9,
            c + 9
        )?;
    } else {
        writeln!(
            out,
            r#",{{"arguments":[],"connections":[],"counter":{},"input_tensors":[],"node_type":"tensor","params":{{"size":0,"tensor_id":0}},"stacking_level":1}}"#,
            c + 9
        )?;
    }
    writeln!(
        out,
        r#",{{"arguments":[],"connections":[],"counter":{},"duration_ns":51234,"input_tensors":[],"node_type":"function_end","params":{{"name":"{name}"}},"stacking_level":1}}"#,
        c + 10
    )?;
    Ok(c + 11)
}

fn generate(path: &std::path::Path, target_bytes: u64) -> std::io::Result<u64> {
    let file = File::create(path)?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    write!(
        out,
        r#"{{"devices":[{{"address_at_first_l1_cb_buffer":102432,"arch":"WORMHOLE_B0","device_id":0,"l1_bank_size":1364928,"l1_num_banks":64,"num_dram_channels":12,"worker_l1_size":1499136}}],"graph":["#
    )?;
    writeln!(
        out,
        r#"{{"arguments":[],"connections":[],"counter":0,"input_tensors":[],"node_type":"capture_start","params":{{}},"stacking_level":0}}"#
    )?;
    let mut c = 1;
    let mut op = 0;
    loop {
        c = write_op(&mut out, c, op)?;
        op += 1;
        if op % 1024 == 0 && out.get_ref().metadata()?.len() >= target_bytes {
            break;
        }
    }
    writeln!(
        out,
        r#",{{"arguments":[],"connections":[],"counter":{c},"duration_ns":1,"input_tensors":[],"node_type":"capture_end","params":{{}},"stacking_level":0}}],"metadata":{{"capture_timestamp_ns":1}},"version":1}}"#
    )?;
    out.flush()?;
    Ok(out.get_ref().metadata()?.len())
}

fn main() -> ExitCode {
    let mb: u64 = std::env::var("TTALLOC_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256);
    let dir = tempfile::tempdir().expect("tempdir");
    let json = dir.path().join("graph.json");
    let bytes = generate(&json, mb << 20).expect("generate");
    println!("generated {:.1} MB of graph JSON", bytes as f64 / 1e6);

    for round in 0..2 {
        let mut sink = CountingSink::default();
        let t = Instant::now();
        let summary = import_graph(
            File::open(&json).unwrap(),
            &mut sink,
            ImportOptions::default(),
        )
        .unwrap_or_else(|f| panic!("import failed: {f}"));
        let secs = t.elapsed().as_secs_f64();
        println!(
            "parse+convert (round {round}): {:.1} MB/s ({} nodes, {} events, {:.2} s, live at end {})",
            bytes as f64 / 1e6 / secs,
            summary.nodes,
            sink.events,
            secs,
            summary.live_buffers
        );
    }

    // Streaming: the peak RSS stays far below the file size.
    if let Some(hwm) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.to_owned())
        })
    {
        println!(
            "peak RSS after the parse+convert rounds: {}",
            hwm.trim_start_matches("VmHWM:").trim()
        );
    }

    let trace = dir.path().join("graph.ttalloc");
    let header = ttalloc_trace::TraceHeader {
        format_major: ttalloc_trace::FORMAT_MAJOR,
        format_minor: ttalloc_trace::FORMAT_MINOR,
        argv: vec!["bench".into()],
        ..Default::default()
    };
    let t = Instant::now();
    let result = std::panic::catch_unwind(move || {
        let mut writer = ttalloc_trace::TraceWriter::create(&trace, header, Default::default())
            .map_err(|e| e.to_string())?;
        let summary = import_graph(
            File::open(&json).unwrap(),
            &mut writer,
            ImportOptions::default(),
        )
        .map_err(|f| f.to_string())?;
        writer.finish().map_err(|e| e.to_string())?;
        Ok::<_, String>((
            summary,
            std::fs::metadata(&trace).map(|m| m.len()).unwrap_or(0),
        ))
    });
    let secs = t.elapsed().as_secs_f64();
    match result {
        Ok(Ok((summary, size))) => println!(
            "into a trace file: {:.1} MB/s ({} events, trace {:.1} KB)",
            bytes as f64 / 1e6 / secs,
            summary.events,
            size as f64 / 1e3
        ),
        // A benchmark that could not do its work must fail, not print a
        // line a reader may miss.
        Ok(Err(e)) => {
            eprintln!("into a trace file: failed: {e}");
            return ExitCode::FAILURE;
        }
        Err(_) => {
            eprintln!("into a trace file: the trace writer panicked");
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
