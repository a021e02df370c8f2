//! Reading blob content: the shared [`BlockFetcher`] and a [`Prefetcher`] per open file.
//!
//! The fetcher turns "I need blocks i..j of this blob version" into ranged GETs of up to
//! `max_request` bytes, runs them as tasks, and lets every reader of a block share the one
//! GET in flight; finished blocks go to the [`DataCache`]. The prefetcher watches one file
//! handle's offsets: while reads are sequential its read-ahead window doubles up to
//! `max_window`; a random read drops the window to nothing, so random access fetches about
//! what was asked (one block) until reads turn sequential again. Prefetch takes memory from
//! a bounded budget and GET slots from a bounded pool; when either is exhausted prefetch
//! is skipped or waits, while demand reads always go ahead.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::cache::{BlockKey, DataCache};
use crate::fs::superblock::OpenFile;
use crate::store::{BlobStore, StoreError};

/// Sizes and limits of the read path.
#[derive(Clone, Debug)]
pub struct ReadConfig {
    /// Cache and fetch granularity.
    pub block_size: u64,
    /// Largest single ranged GET.
    pub max_request: u64,
    /// Read-ahead window after the first sequential read.
    pub initial_window: u64,
    /// Largest read-ahead window.
    pub max_window: u64,
    /// Prefetch GETs in flight, all files together.
    pub max_prefetch_gets: usize,
    /// Bytes of prefetch in flight, all files together.
    pub prefetch_budget: u64,
}

impl ReadConfig {
    /// Defaults derived from the cache size: prefetch may hold a quarter of it (at most 128 MiB).
    pub fn for_cache(cache_bytes: u64, block_size: u64) -> Self {
        const MIB: u64 = 1 << 20;
        ReadConfig {
            block_size,
            max_request: (8 * MIB).max(block_size),
            initial_window: block_size,
            max_window: 64 * MIB,
            max_prefetch_gets: 16,
            prefetch_budget: (cache_bytes / 4).min(128 * MIB).max(block_size),
        }
    }
}

type SharedBlock = Shared<BoxFuture<'static, Result<Bytes, StoreError>>>;

/// Fetches blocks for every open file, sharing GETs in flight and filling the cache.
pub struct BlockFetcher<S: BlobStore> {
    store: Arc<S>,
    cache: Arc<dyn DataCache>,
    config: ReadConfig,
    inflight: Mutex<HashMap<BlockKey, SharedBlock>>,
    prefetch_gets: Arc<Semaphore>,
    /// Prefetch memory in KiB permits.
    prefetch_kib: Arc<Semaphore>,
    gets: AtomicU64,
    fetched_bytes: AtomicU64,
}

impl<S: BlobStore> BlockFetcher<S> {
    pub fn new(store: Arc<S>, cache: Arc<dyn DataCache>, config: ReadConfig) -> Arc<Self> {
        Arc::new(BlockFetcher {
            store,
            cache,
            prefetch_gets: Arc::new(Semaphore::new(config.max_prefetch_gets)),
            prefetch_kib: Arc::new(Semaphore::new((config.prefetch_budget / 1024) as usize)),
            config,
            inflight: Mutex::new(HashMap::new()),
            gets: AtomicU64::new(0),
            fetched_bytes: AtomicU64::new(0),
        })
    }

    /// GETs sent and bytes received so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.gets.load(Relaxed), self.fetched_bytes.load(Relaxed))
    }

    pub fn config(&self) -> &ReadConfig {
        &self.config
    }

    fn key(file: &OpenFile, index: u64) -> BlockKey {
        BlockKey {
            blob: file.key.clone(),
            etag: file.etag.clone(),
            index,
        }
    }

    fn block_range(&self, file: &OpenFile, index: u64) -> (u64, u64) {
        let start = index * self.config.block_size;
        (start, (start + self.config.block_size).min(file.size))
    }

    /// Starts GETs for the blocks of `blocks` neither cached nor in flight. Spans end on
    /// multiples of `max_request`, so a sliding window asks for whole requests, not a block at
    /// a time. Prefetch stops at the first span the memory budget cannot hold.
    fn ensure(self: &Arc<Self>, file: &OpenFile, blocks: RangeInclusive<u64>, demand: bool) {
        let per_span = (self.config.max_request / self.config.block_size).max(1);
        let mut inflight = self.inflight.lock().unwrap();
        let mut run: Vec<u64> = Vec::new();
        for index in blocks {
            let key = Self::key(file, index);
            let missing = !inflight.contains_key(&key) && self.cache.get(&key).is_none();
            if missing {
                run.push(index);
            }
            let boundary = index % per_span == per_span - 1;
            if (!missing || boundary) && !run.is_empty() {
                if !self.start_span(&mut inflight, file, &run, demand) {
                    return;
                }
                run.clear();
            }
        }
        if !run.is_empty() {
            self.start_span(&mut inflight, file, &run, demand);
        }
    }

    /// Spawns one GET for the contiguous blocks `run`; false when prefetch has no budget.
    fn start_span(
        self: &Arc<Self>,
        inflight: &mut HashMap<BlockKey, SharedBlock>,
        file: &OpenFile,
        run: &[u64],
        demand: bool,
    ) -> bool {
        let (first, last) = (run[0], run[run.len() - 1]);
        let (start, _) = self.block_range(file, first);
        let (_, end) = self.block_range(file, last);
        let budget = if demand {
            None
        } else {
            let kib = (end - start).div_ceil(1024) as u32;
            match self.prefetch_kib.clone().try_acquire_many_owned(kib) {
                Ok(permit) => Some(permit),
                Err(_) => return false,
            }
        };
        let span = self
            .clone()
            .fetch_span(file.clone(), first, last, start..end, budget);
        let span = span.boxed().shared();
        for &index in run {
            let (bs, be) = self.block_range(file, index);
            let (from, to) = ((bs - start) as usize, (be - start) as usize);
            let block = span.clone().map(move |r| r.map(|b| b.slice(from..to)));
            inflight.insert(Self::key(file, index), block.boxed().shared());
        }
        true
    }

    /// The task behind one span: GET, split into blocks, cache them, clear "in flight".
    fn fetch_span(
        self: Arc<Self>,
        file: OpenFile,
        first: u64,
        last: u64,
        range: std::ops::Range<u64>,
        budget: Option<OwnedSemaphorePermit>,
    ) -> impl std::future::Future<Output = Result<Bytes, StoreError>> + Send + 'static {
        let task = tokio::spawn(async move {
            let _slot = match budget {
                Some(_) => self.prefetch_gets.clone().acquire_owned().await.ok(),
                None => None,
            };
            let result = self.store.read(&file.key, range.clone(), &file.etag).await;
            self.gets.fetch_add(1, Relaxed);
            if let Ok(bytes) = &result {
                self.fetched_bytes.fetch_add(bytes.len() as u64, Relaxed);
            }
            let mut inflight = self.inflight.lock().unwrap();
            for index in first..=last {
                let key = Self::key(&file, index);
                if let Ok(bytes) = &result {
                    let (bs, be) = self.block_range(&file, index);
                    let slice =
                        bytes.slice((bs - range.start) as usize..(be - range.start) as usize);
                    self.cache.put(key.clone(), slice);
                }
                inflight.remove(&key);
            }
            drop(budget);
            result
        });
        async move {
            task.await
                .unwrap_or_else(|e| Err(StoreError::Protocol(format!("fetch task failed: {e}"))))
        }
    }

    /// Block `index` of `file`: cached, in flight, or fetched now.
    pub async fn block(self: &Arc<Self>, file: &OpenFile, index: u64) -> Result<Bytes, StoreError> {
        let key = Self::key(file, index);
        loop {
            if let Some(b) = self.cache.get(&key) {
                return Ok(b);
            }
            let pending = self.inflight.lock().unwrap().get(&key).cloned();
            match pending {
                Some(f) => return f.await,
                None => self.ensure(file, index..=index, true),
            }
        }
    }
}

/// Sequential-access tracking for one open file.
#[derive(Debug, Default)]
pub struct Prefetcher {
    state: Mutex<SeqState>,
}

#[derive(Debug, Default)]
struct SeqState {
    /// Where the next sequential read would start.
    next: u64,
    /// Current read-ahead, in bytes (0: none).
    window: u64,
}

impl Prefetcher {
    /// Records a read of `offset..end` and returns the read-ahead window to keep after it.
    /// A read is sequential when it starts near where the last one ended: up to one request
    /// before (the kernel may deliver neighbouring reads out of order) or inside the window.
    fn advance(&self, offset: u64, end: u64, config: &ReadConfig) -> u64 {
        let mut st = self.state.lock().unwrap();
        let slack = config.block_size;
        let sequential = offset + slack >= st.next && offset <= st.next + st.window + slack;
        if sequential {
            st.window = (st.window * 2).clamp(config.initial_window, config.max_window);
            st.next = st.next.max(end);
        } else {
            st.window = 0;
            st.next = end;
        }
        st.window
    }

    /// Up to `size` bytes at `offset` of `file` (fewer at its end).
    pub async fn read<S: BlobStore>(
        &self,
        fetcher: &Arc<BlockFetcher<S>>,
        file: &OpenFile,
        offset: u64,
        size: u32,
    ) -> Result<Bytes, StoreError> {
        let end = offset.saturating_add(size as u64).min(file.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let config = fetcher.config();
        let window = self.advance(offset, end, config);
        let bs = config.block_size;
        let (first, last) = (offset / bs, (end - 1) / bs);
        fetcher.ensure(file, first..=last, true);
        if window > 0 {
            // Read ahead in whole requests: up to the last request boundary in the window
            // (or the end of the file).
            let req = config.max_request.max(bs);
            let mut ahead_end = end.saturating_add(window);
            if ahead_end < file.size {
                ahead_end = ahead_end / req * req;
            }
            let ahead_end = ahead_end.min(file.size);
            if ahead_end > (last + 1) * bs {
                fetcher.ensure(file, last + 1..=(ahead_end - 1) / bs, false);
            }
        }
        if first == last {
            let block = fetcher.block(file, first).await?;
            let from = (offset - first * bs) as usize;
            return Ok(block.slice(from..from + (end - offset) as usize));
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        for index in first..=last {
            let block = fetcher.block(file, index).await?;
            let block_start = index * bs;
            let from = offset.saturating_sub(block_start) as usize;
            let to = ((end - block_start) as usize).min(block.len());
            out.extend_from_slice(&block[from..to]);
        }
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::MemoryBlockCache;
    use crate::store::MemoryStore;

    const KIB: u64 = 1024;

    fn config() -> ReadConfig {
        ReadConfig {
            block_size: 64 * KIB,
            max_request: 256 * KIB,
            initial_window: 64 * KIB,
            max_window: 1024 * KIB,
            max_prefetch_gets: 4,
            prefetch_budget: 4096 * KIB,
        }
    }

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    fn setup(
        len: usize,
        config: ReadConfig,
        cache_bytes: u64,
    ) -> (Arc<BlockFetcher<MemoryStore>>, OpenFile) {
        let store = MemoryStore::new();
        store.put("f", data(len));
        let etag = futures::executor::block_on(store.properties("f"))
            .unwrap()
            .etag;
        let fetcher = BlockFetcher::new(
            Arc::new(store),
            Arc::new(MemoryBlockCache::new(cache_bytes)),
            config,
        );
        let file = OpenFile {
            ino: 2,
            key: Arc::from("f"),
            etag: Arc::from(etag),
            size: len as u64,
        };
        (fetcher, file)
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    #[test]
    fn window_grows_while_sequential_and_drops_on_random_reads() {
        let p = Prefetcher::default();
        let c = config();
        let mut offset = 0;
        let mut windows = Vec::new();
        for _ in 0..6 {
            windows.push(p.advance(offset, offset + 32 * KIB, &c));
            offset += 32 * KIB;
        }
        assert_eq!(windows, [64, 128, 256, 512, 1024, 1024].map(|w| w * KIB));
        assert_eq!(p.advance(50_000 * KIB, 50_004 * KIB, &c), 0, "random read");
        assert_eq!(p.advance(7 * KIB, 11 * KIB, &c), 0, "still random");
        assert_eq!(
            p.advance(11 * KIB, 15 * KIB, &c),
            64 * KIB,
            "sequential again"
        );
    }

    #[tokio::test]
    async fn sequential_reads_prefetch_and_return_exact_bytes() {
        let len = 3 * 1024 * 1024 + 17;
        let (f, file) = setup(len, config(), 64 << 20);
        let p = Prefetcher::default();
        let expect = data(len);
        let mut got = Vec::new();
        let mut offset = 0u64;
        while offset < len as u64 {
            let b = p.read(&f, &file, offset, 128 * 1024).await.unwrap();
            got.extend_from_slice(&b);
            offset += b.len() as u64;
        }
        assert_eq!(got, expect);
        settle().await;
        let fetched = f.store.bytes_read.load(Relaxed);
        assert_eq!(fetched, len as u64, "every byte fetched once");
        assert!(
            f.store.read_calls.load(Relaxed) < (len as u64 / (64 * KIB)),
            "GETs span several blocks"
        );
    }

    #[tokio::test]
    async fn random_small_reads_fetch_at_most_one_block_each() {
        let len = 8 << 20;
        let (f, file) = setup(len, config(), 64 << 20);
        let p = Prefetcher::default();
        let offsets = [
            5_000_000u64,
            123_456,
            7_000_000,
            2_000_000,
            4_100_000,
            900_000,
        ];
        for (i, off) in offsets.iter().enumerate() {
            let b = p.read(&f, &file, *off, 4096).await.unwrap();
            assert_eq!(&b[..], &data(len)[*off as usize..*off as usize + 4096]);
            settle().await;
            assert!(f.store.bytes_read.load(Relaxed) <= (i as u64 + 1) * 64 * KIB);
        }
    }

    #[tokio::test]
    async fn short_backward_seeks_are_served_from_kept_blocks() {
        let (f, file) = setup(1 << 20, config(), 64 << 20);
        let p = Prefetcher::default();
        for i in 0..4u64 {
            p.read(&f, &file, i * 64 * KIB, 64 * KIB as u32)
                .await
                .unwrap();
        }
        settle().await;
        let before = f.store.read_calls.load(Relaxed);
        let b = p.read(&f, &file, 10 * KIB, 4096).await.unwrap();
        assert_eq!(&b[..], &data(1 << 20)[10 * 1024..10 * 1024 + 4096]);
        assert_eq!(f.store.read_calls.load(Relaxed), before, "no new GET");
    }

    #[tokio::test]
    async fn a_changed_blob_fails_instead_of_mixing_versions() {
        let (f, file) = setup(1 << 20, config(), 64 << 20);
        let p = Prefetcher::default();
        p.read(&f, &file, 0, 4096).await.unwrap();
        settle().await;
        f.store.put("f", vec![9u8; 1 << 20]);
        let err = p.read(&f, &file, 900 * 1024, 4096).await.unwrap_err();
        assert!(
            matches!(err, StoreError::PreconditionFailed { .. }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn prefetch_respects_its_memory_budget_and_the_cache_its_capacity() {
        let mut c = config();
        c.prefetch_budget = 128 * KIB;
        let (f, file) = setup(4 << 20, c, 256 * KIB);
        let p = Prefetcher::default();
        let mut offset = 0;
        for _ in 0..16 {
            let b = p.read(&f, &file, offset, 64 * 1024).await.unwrap();
            assert_eq!(
                &b[..],
                &data(4 << 20)[offset as usize..offset as usize + b.len()]
            );
            offset += b.len() as u64;
            assert!(f.cache.held_bytes() <= 256 * KIB);
            let in_flight_kib = (c_budget_kib(&f) - f.prefetch_kib.available_permits()) as u64;
            assert!(in_flight_kib <= 128);
        }
    }

    fn c_budget_kib(f: &BlockFetcher<MemoryStore>) -> usize {
        (f.config.prefetch_budget / 1024) as usize
    }

    #[tokio::test]
    async fn concurrent_readers_of_a_block_share_one_get() {
        let (f, file) = setup(1 << 20, config(), 64 << 20);
        let reads = (0..8).map(|_| {
            let (f, file) = (f.clone(), file.clone());
            tokio::spawn(async move { f.block(&file, 3).await.unwrap() })
        });
        for r in futures::future::join_all(reads).await {
            assert_eq!(r.unwrap().len() as u64, 64 * KIB);
        }
        assert_eq!(f.store.read_calls.load(Relaxed), 1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn any_reads_and_seeks_return_exactly_the_blobs_bytes(
            len in 1usize..700_000,
            ops in proptest::collection::vec((0u64..800_000, 1u32..200_000), 1..40),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let (f, file) = setup(len, config(), 512 * KIB);
                let p = Prefetcher::default();
                let expect = data(len);
                for (off, size) in ops {
                    let b = p.read(&f, &file, off, size).await.unwrap();
                    let start = (off as usize).min(len);
                    let end = (off as usize + size as usize).min(len);
                    assert_eq!(&b[..], &expect[start..end]);
                }
            });
        }
    }
}
