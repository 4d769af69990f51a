//! Thumbnails of images to upload (GSMA RCC.07 §3.2.5: the `Thumbnail` part of the upload,
//! which a recipient shows before it downloads the file): the image decoded from disk (JPEG
//! or PNG), scaled to fit 128 px, encoded as JPEG, at most [`MAX_THUMBNAIL`] bytes (50 KiB,
//! what clients send); smaller or coarser until it fits. The decoder is held to
//! [`MAX_DECODE_BYTES`] of memory and [`MAX_SIDE`] pixels a side: an image past them gets no
//! thumbnail (the file still goes).

use std::path::{Path, PathBuf};

use image::codecs::jpeg::JpegEncoder;
use image::{ImageReader, Limits};

/// The largest thumbnail sent.
pub const MAX_THUMBNAIL: usize = 50 * 1024;
/// Memory the decoder may use for one image.
const MAX_DECODE_BYTES: u64 = 128 * 1024 * 1024;
/// The largest image side decoded.
const MAX_SIDE: u32 = 12_000;
/// The sizes (box side, JPEG quality) tried in turn until the thumbnail fits.
const STEPS: &[(u32, u8)] = &[(128, 80), (128, 60), (96, 60), (64, 50)];

/// A thumbnail ready for the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumbnail {
    /// JPEG bytes.
    pub jpeg: Vec<u8>,
    /// Its width and height.
    pub size: (u32, u32),
}

/// Why an image got no thumbnail.
#[derive(Debug, thiserror::Error)]
pub enum ThumbError {
    /// Not an image this build reads (JPEG and PNG), or not readable.
    #[error("cannot read the image: {0}")]
    Read(#[from] std::io::Error),
    /// The image does not decode (or is past the limits).
    #[error("cannot decode the image: {0}")]
    Decode(#[from] image::ImageError),
    /// Even the smallest step is over [`MAX_THUMBNAIL`].
    #[error("no thumbnail of at most {MAX_THUMBNAIL} bytes")]
    TooLarge,
}

/// True for the content types a thumbnail is made for.
pub fn is_image(content_type: &str) -> bool {
    matches!(content_type, "image/jpeg" | "image/png")
}

/// The thumbnail of the image at `path` (blocking: decodes and encodes).
pub fn make(path: &Path) -> Result<Thumbnail, ThumbError> {
    let mut reader = ImageReader::open(path)?.with_guessed_format()?;
    let mut limits = Limits::default();
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    reader.limits(limits);
    let img = reader.decode()?;
    for &(side, quality) in STEPS {
        let t = img.thumbnail(side, side).to_rgb8();
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, quality).encode_image(&t)?;
        if jpeg.len() <= MAX_THUMBNAIL {
            return Ok(Thumbnail {
                jpeg,
                size: (t.width(), t.height()),
            });
        }
    }
    Err(ThumbError::TooLarge)
}

/// [`make`] off the async threads; `None` (logged) when the image gets no thumbnail.
pub async fn for_upload(path: PathBuf) -> Option<Thumbnail> {
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || make(&path)).await {
        Ok(Ok(t)) => Some(t),
        Ok(Err(e)) => {
            tracing::info!(file = %shown, error = %e, "no thumbnail; the file goes without one");
            None
        }
        Err(e) => {
            tracing::warn!(file = %shown, error = %e, "thumbnail task failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_png_becomes_a_small_jpeg_and_junk_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("big.png");
        let img = image::RgbImage::from_fn(600, 300, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, ((x * y) % 256) as u8])
        });
        img.save(&png).unwrap();
        let t = make(&png).unwrap();
        assert!(t.jpeg.len() <= MAX_THUMBNAIL, "{}", t.jpeg.len());
        assert_eq!(t.size, (128, 64), "the aspect ratio is kept");
        assert_eq!(&t.jpeg[..2], &[0xff, 0xd8], "a JPEG");
        let back = image::load_from_memory(&t.jpeg).unwrap();
        assert_eq!((back.width(), back.height()), (128, 64));
        let junk = dir.path().join("not.jpg");
        std::fs::write(&junk, b"\xff\xd8 not really a jpeg").unwrap();
        assert!(make(&junk).is_err());
        assert!(is_image("image/png") && !is_image("text/plain"));
    }
}
