//! The server ceiling for scripts/bench.sh: reads one blob with parallel ranged GETs through
//! blobmount's own client stack (`AzureBlobStore`), no FUSE involved, and prints MB/s.
//!
//! `getbench <container-url> <blob> <concurrency> <request-bytes>`; the SAS comes from
//! `AZURE_STORAGE_SAS_TOKEN`. With several blob names separated by commas, each is read
//! whole, `concurrency` at a time (the small-files ceiling).

use std::sync::Arc;
use std::time::Instant;

use blobmount::auth::SasToken;
use blobmount::source::ContainerSource;
use blobmount::store::{AzureBlobStore, BlobStore, StoreOptions};
use futures::StreamExt;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        eprintln!("usage: getbench <container-url> <blob[,blob...]> <concurrency> <request-bytes>");
        std::process::exit(2);
    }
    let (source, _) = ContainerSource::parse(&args[1]).expect("container url");
    let sas =
        SasToken::new(&std::env::var("AZURE_STORAGE_SAS_TOKEN").expect("AZURE_STORAGE_SAS_TOKEN"));
    let store =
        Arc::new(AzureBlobStore::new(source, Arc::new(sas), &StoreOptions::default()).unwrap());
    let concurrency: usize = args[3].parse().unwrap();
    let request: u64 = args[4].parse().unwrap();
    let names: Vec<String> = args[2].split(',').map(str::to_string).collect();
    let mut ranges = Vec::new();
    for name in &names {
        let info = store.properties(name).await.expect("properties");
        let mut off = 0;
        while off < info.size {
            let end = (off + request).min(info.size);
            ranges.push((name.clone(), info.etag.clone(), off..end));
            off = end;
        }
    }
    let start = Instant::now();
    let total: u64 = futures::stream::iter(ranges)
        .map(|(name, etag, range)| {
            let store = store.clone();
            async move { store.read(&name, range, &etag).await.expect("read").len() as u64 }
        })
        .buffer_unordered(concurrency)
        .fold(0, |acc, n| async move { acc + n })
        .await;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{:.1} MB/s ({total} bytes in {secs:.3} s)",
        total as f64 / secs / 1e6
    );
}
