//! A real browser: headless Chromium loading a page, and the PNG screenshots it takes, read
//! back to their pixels.

use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::require_program;

/// How long one browser run may take before it is killed and the test fails.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(90);

/// Runs headless Chromium on `url` with a window of `width` × `height`, letting the page's
/// scripts run for `budget` of virtual time, and returns its standard output. With
/// `screenshot`, writes a PNG of the window there; otherwise prints the DOM after the scripts
/// ran.
///
/// # Panics
///
/// Panics (failing the test) when Chromium is not installed, fails, or runs past its timeout.
#[must_use]
pub fn chromium(
    url: &str,
    (width, height): (u32, u32),
    budget: Duration,
    screenshot: Option<&Path>,
) -> String {
    let chromium = require_program("chromium", "apt-get install chromium");
    let profile = std::env::temp_dir().join(format!(
        "vitals-chromium-{}-{}",
        std::process::id(),
        Instant::now().elapsed().as_nanos()
    ));
    let mut command = Command::new(chromium);
    command
        .arg("--headless")
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--disable-dev-shm-usage")
        .arg("--no-first-run")
        .arg("--hide-scrollbars")
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--virtual-time-budget={}", budget.as_millis()));
    match screenshot {
        Some(path) => command.arg(format!("--screenshot={}", path.display())),
        None => command.arg("--dump-dom"),
    };
    let mut child = command
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromium starts");
    let mut stdout = child.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for chromium") {
            break status;
        }
        if started.elapsed() > BROWSER_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium ran past {BROWSER_TIMEOUT:?} on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = reader.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&profile);
    assert!(status.success(), "chromium failed on {url}: {status}");
    out
}

/// An 8-bit RGB or RGBA image, decoded from a PNG.
#[derive(Debug)]
pub struct Image {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// RGB values, row by row.
    pub rgb: Vec<[u8; 3]>,
}

impl Image {
    /// Decodes a non-interlaced 8-bit RGB or RGBA PNG, the kind Chromium writes.
    ///
    /// # Errors
    ///
    /// What is wrong with the file: not a PNG, another pixel format, a broken stream.
    pub fn from_png(png: &[u8]) -> Result<Self, String> {
        let body = png
            .strip_prefix(b"\x89PNG\r\n\x1a\n")
            .ok_or("not a PNG signature")?;
        let (mut width, mut height, mut channels) = (0, 0, 0);
        let mut data = Vec::new();
        let mut rest = body;
        while rest.len() >= 12 {
            let length = u32::from_be_bytes(rest[..4].try_into().unwrap()) as usize;
            let kind = &rest[4..8];
            let chunk = rest.get(8..8 + length).ok_or("truncated chunk")?;
            match kind {
                b"IHDR" => {
                    width = u32::from_be_bytes(chunk[..4].try_into().unwrap()) as usize;
                    height = u32::from_be_bytes(chunk[4..8].try_into().unwrap()) as usize;
                    let (depth, color, interlace) = (chunk[8], chunk[9], chunk[12]);
                    channels = match (depth, color, interlace) {
                        (8, 2, 0) => 3,
                        (8, 6, 0) => 4,
                        other => return Err(format!("unsupported PNG format {other:?}")),
                    };
                }
                b"IDAT" => data.extend_from_slice(chunk),
                b"IEND" => break,
                _ => {}
            }
            rest = &rest[12 + length..];
        }
        let mut raw = Vec::new();
        flate2::read::ZlibDecoder::new(&data[..])
            .read_to_end(&mut raw)
            .map_err(|e| format!("broken image data: {e}"))?;
        let stride = width * channels;
        if raw.len() != height * (stride + 1) {
            return Err(format!(
                "{} bytes of pixels for {width}×{height}",
                raw.len()
            ));
        }
        let mut pixels = vec![0u8; height * stride];
        for y in 0..height {
            let filter = raw[y * (stride + 1)];
            let line = &raw[y * (stride + 1) + 1..(y + 1) * (stride + 1)];
            for x in 0..stride {
                let a = if x >= channels {
                    pixels[y * stride + x - channels]
                } else {
                    0
                };
                let b = if y > 0 {
                    pixels[(y - 1) * stride + x]
                } else {
                    0
                };
                let c = if x >= channels && y > 0 {
                    pixels[(y - 1) * stride + x - channels]
                } else {
                    0
                };
                let predicted = match filter {
                    0 => 0,
                    1 => a,
                    2 => b,
                    3 => u8::try_from((u16::from(a) + u16::from(b)) / 2).unwrap_or(u8::MAX),
                    4 => paeth(a, b, c),
                    other => return Err(format!("unknown PNG filter {other}")),
                };
                pixels[y * stride + x] = line[x].wrapping_add(predicted);
            }
        }
        let rgb = pixels
            .chunks_exact(channels)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        Ok(Self { width, height, rgb })
    }

    /// How many pixels within `tolerance` (per channel) of `color`.
    #[must_use]
    pub fn count_near(&self, color: [u8; 3], tolerance: u8) -> usize {
        self.rgb
            .iter()
            .filter(|p| {
                p.iter()
                    .zip(color)
                    .all(|(&v, c)| v.abs_diff(c) <= tolerance)
            })
            .count()
    }
}

fn paeth(a: u8, b: u8, c: u8) -> u8 {
    let (ia, ib, ic) = (i16::from(a), i16::from(b), i16::from(c));
    let p = ia + ib - ic;
    let (pa, pb, pc) = ((p - ia).abs(), (p - ib).abs(), (p - ic).abs());
    if pa <= pb && pa <= pc {
        a
    } else if pb <= pc {
        b
    } else {
        c
    }
}
