//! Seeds Azurite for the demo and for manual testing.
//!
//! `seed demo <container-url>`: creates the container and uploads a sample dataset (nested
//! directories, a 64 MiB file, 500 small files, a directory marker), then prints a read-only
//! SAS on its last line. `seed bench <container-url>`: the data of scripts/bench.sh (a 1 GiB
//! blob, four of 256 MiB, 2,000 of 128 KiB, a directory of 20,000 entries), SAS last.
//! `seed sas <endpoint>`: prints a read-only SAS for the account.

#[path = "../tests/integration/azurite.rs"]
mod azurite;

use azurite::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("demo"), Some(url)) => demo(url),
        (Some("bench"), Some(url)) => bench(url),
        (Some("sas"), Some(_)) => println!("{}", read_sas()),
        _ => {
            eprintln!("usage: seed demo|bench <container-url> | seed sas <endpoint>");
            std::process::exit(2);
        }
    }
}

fn demo(url: &str) {
    let c = Container::at(url);
    c.put(
        "README.txt",
        b"A sample dataset served by blobmount from Azurite.\n",
    );
    c.put("large/sample-64MiB.bin", &random_bytes(64 << 20, 7));
    let small: Vec<(String, Vec<u8>)> = (0..500)
        .map(|i| {
            let name = format!("images/class-{}/img-{i:04}.jpg", i % 5);
            (name, random_bytes(8 * 1024 + i * 13, i as u64))
        })
        .collect();
    c.put_many(small, 16);
    c.put("nested/a/b/c/deep.txt", b"deep\n");
    c.put_with_metadata("empty-folder", b"", &[("hdi_isfolder", "true")]);
    println!("seeded {url}: README.txt, large/, images/ (500 files), nested/, empty-folder/");
    println!("{}", read_sas());
}

fn bench(url: &str) {
    let c = Container::at(url);
    c.put("big/1GiB.bin", &random_bytes(1 << 30, 1));
    for i in 0..4 {
        c.put(&format!("par/p{i}.bin"), &random_bytes(256 << 20, 10 + i));
    }
    let small = (0..2000)
        .map(|i| {
            (
                format!("small/s{i:04}.bin"),
                random_bytes(128 << 10, 100 + i),
            )
        })
        .collect();
    c.put_many(small, 16);
    let wide = (0..20_000)
        .map(|i| (format!("wide/w{i:05}"), vec![b'w'; 16]))
        .collect();
    c.put_many(wide, 32);
    println!(
        "seeded {url}: big/1GiB.bin, par/p0..3.bin (256 MiB), small/ (2,000 x 128 KiB), wide/ (20,000)"
    );
    println!("{}", read_sas());
}
