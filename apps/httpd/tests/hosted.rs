//! The hosted binary: the self-check (httpd and a client guest on the
//! software Xen, through netfront/netback and blkfront/blkback), `--pack`,
//! and bad arguments.

use std::process::Command;

fn httpd() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ringlet-httpd"))
}

#[test]
fn self_check_serves_the_demo_site_and_powers_off() {
    let out = httpd().output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "httpd: serving http://10.0.0.2:80/",
        "client: GET /index.html 200, ",
        "client: GET /big.bin 200, 1048576 bytes match",
        "client: GET /logo.png 200, ",
        "client: GET /no/such/file 404",
        "httpd: shutdown requested (poweroff)",
        "ringlet: main returned, Poweroff",
    ] {
        assert!(stdout.contains(line), "no {line:?} in\n{stdout}");
    }
    assert!(stdout.contains("client: all ") && stdout.contains(" checks passed"));
}

#[test]
fn self_check_of_a_directory_on_another_port() {
    let dir = std::env::temp_dir().join(format!("httpd-hosted-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("a b")).unwrap();
    std::fs::write(dir.join("index.html"), b"<p>x</p>").unwrap();
    std::fs::write(dir.join("a b/c.txt"), b"spaces").unwrap();
    let out = httpd()
        .arg("--site")
        .arg(&dir)
        .arg("port=8080")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("httpd: serving http://10.0.0.2:8080/"),
        "{stdout}"
    );
    assert!(
        stdout.contains("client: GET /a b/c.txt 200, 6 bytes match"),
        "{stdout}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn pack_writes_the_demo_image() {
    let out_path = std::env::temp_dir().join(format!("httpd-pack-{}.tar", std::process::id()));
    let out = httpd().arg("--pack").arg(&out_path).output().unwrap();
    assert!(out.status.success());
    let tar = std::fs::read(&out_path).unwrap();
    assert_eq!(tar.len() % 512, 0);
    let mut names: Vec<String> = tar::Archive::new(&tar[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for want in [
        "big.bin",
        "index.html",
        "style.css",
        "logo.png",
        "docs/index.html",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    std::fs::remove_file(&out_path).unwrap();
}

#[test]
fn bad_arguments_fail() {
    for args in [
        &["--site"][..],
        &["--bogus"],
        &["--tap", "t0", "--pack", "x"],
        &["port=0"],
    ] {
        let out = httpd().args(args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
    }
}
