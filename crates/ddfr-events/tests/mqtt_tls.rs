//! `mqtts://` with a username and password, against a private Mosquitto the test starts on a
//! free 127.0.0.1 port with a certificate made at test time: the right CA and password
//! connect; a wrong password or an untrusted certificate never do.
//!
//! Without the `mosquitto` binary the test prints `SKIPPED:` and returns, unless `CI` is set.

#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ddfr_events::{Events, EventsConfig, MqttConfig, PersonDirectory, PersonLabel, SystemClock};

#[derive(Debug)]
struct Nobody;

impl PersonDirectory for Nobody {
    fn version(&self) -> u64 {
        0
    }
    fn persons(&self) -> Vec<PersonLabel> {
        Vec::new()
    }
}

fn mosquitto_binary() -> Option<PathBuf> {
    ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// A Mosquitto with one TLS listener and a password file, killed on drop.
struct Broker {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_broker(binary: &Path, cert_pem: &str, key_pem: &str) -> Broker {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(dir.path().join("cert.pem"), cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), key_pem).unwrap();
    let passwd = dir.path().join("passwd");
    let status = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["ddfr", "s3cret:pass"])
        .status()
        .unwrap();
    assert!(status.success());
    let config = format!(
        "user root\nlistener {port} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n\
         allow_anonymous false\npassword_file {passwd}\npersistence false\n",
        cert = dir.path().join("cert.pem").display(),
        key = dir.path().join("key.pem").display(),
        passwd = passwd.display(),
    );
    std::fs::write(dir.path().join("mosquitto.conf"), config).unwrap();
    let child = Command::new(binary)
        .arg("-c")
        .arg(dir.path().join("mosquitto.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Broker { child, port, _dir: dir }
}

fn events(url: &str, ca_pem: Option<&str>) -> Events {
    let mut mqtt = MqttConfig::new(url.parse().unwrap());
    mqtt.ca_pem = ca_pem.map(|pem| pem.as_bytes().to_vec());
    mqtt.max_backoff = Duration::from_millis(300);
    mqtt.prefix = format!("ddfr-tls-{}", std::process::id());
    let config = EventsConfig { mqtt: Some(mqtt), ..EventsConfig::default() };
    Events::start(config, Arc::new(Nobody), Arc::new(SystemClock)).unwrap()
}

#[tokio::test]
async fn mqtts_with_credentials_connects_only_with_the_right_ca_and_password() {
    let Some(binary) = mosquitto_binary() else {
        assert!(
            !std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false"),
            "CI is set but mosquitto is not installed"
        );
        println!("SKIPPED: the mosquitto binary is not installed");
        return;
    };
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let cert_pem = certified.cert.pem();
    let broker = start_broker(&binary, &cert_pem, &certified.key_pair.serialize_pem());
    let port = broker.port;

    let good = events(&format!("mqtts://ddfr:s3cret%3Apass@127.0.0.1:{port}"), Some(&cert_pem));
    let wrong_password = events(&format!("mqtts://ddfr:nope@127.0.0.1:{port}"), Some(&cert_pem));
    let untrusted = events(&format!("mqtts://ddfr:s3cret%3Apass@127.0.0.1:{port}"), None);
    let plain = events(&format!("mqtt://ddfr:s3cret%3Apass@127.0.0.1:{port}"), None);

    let deadline = Instant::now() + Duration::from_secs(10);
    while !good.health().mqtt.connected {
        assert!(Instant::now() < deadline, "the TLS connection with the password never came up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Give the others as many attempts as the back-off allows in two seconds.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(good.health().mqtt.connected);
    assert_eq!(good.health().mqtt.connects, 1);
    for (what, events) in [
        ("a wrong password", &wrong_password),
        ("an untrusted certificate", &untrusted),
        ("plain TCP", &plain),
    ] {
        let mqtt = events.health().mqtt;
        assert!(!mqtt.connected && mqtt.connects == 0, "{what} connected: {mqtt:?}");
    }
    drop(broker);
}
