"""maskpose.data.video: video files and image folders as frame sources, multi-view grouping."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from maskpose.data.video import (ImageFolder, VideoError, VideoFile, VideoWarning, common_frame_count,
                                 discover_views, natural_key, open_source, open_views)


def _frame(k: int, W: int = 64, H: int = 48) -> np.ndarray:
    """RGB frame whose left half has grey level 10 * k (mod 250) and right half is pure red (channel order check)."""
    img = np.zeros((H, W, 3), np.uint8)
    img[:, : W // 2] = (10 * k) % 250
    img[:, W // 2:] = (255, 0, 0)
    return img


def write_video(path: Path, n: int, fourcc: str = "MJPG", fps: float = 25.0, W: int = 64, H: int = 48) -> Path:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (W, H))
    assert w.isOpened()
    for k in range(n):
        w.write(cv2.cvtColor(_frame(k, W, H), cv2.COLOR_RGB2BGR))
    w.release()
    return path


def write_images(folder: Path, n: int, names=None, W: int = 64, H: int = 48) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    names = names or [f"img{k}.png" for k in range(n)]
    for k, name in enumerate(names):
        cv2.imwrite(str(folder / name), cv2.cvtColor(_frame(k, W, H), cv2.COLOR_RGB2BGR))
    return folder


def test_natural_order():
    names = ["img10.png", "img2.png", "IMG1.png", "img2b.png"]
    assert sorted(names, key=natural_key) == ["IMG1.png", "img2.png", "img2b.png", "img10.png"]


@pytest.mark.parametrize("fourcc,ext", [("MJPG", ".avi"), ("mp4v", ".mp4")])
def test_video_file_reads_frames_in_order_and_random_access(tmp_path, fourcc, ext):
    p = write_video(tmp_path / f"cam1{ext}", 12, fourcc)
    src = open_source(p)
    assert isinstance(src, VideoFile)
    assert src.num_frames == 12 and len(src) == 12 and src.size == (64, 48) and src.name == "cam1"
    assert src.fps == pytest.approx(25.0)
    got = dict(src.frames([0, 5, 11]))
    for k, f in got.items():
        assert f.shape == (48, 64, 3) and f.dtype == np.uint8
        assert abs(float(f[:, :20].mean()) - 10 * k) < 6, (k, f[:, :20].mean())
        assert f[:, 40:, 0].mean() > 200 and f[:, 40:, 2].mean() < 50  # RGB order
    assert abs(float(src.read(7)[:, :20].mean()) - 70) < 6
    assert abs(float(src.read(2)[:, :20].mean()) - 20) < 6  # backwards: seeks
    assert [i for i, _ in src] == list(range(12))
    with pytest.raises(VideoError, match="out of range"):
        src.read(12)
    assert src.frame_name(3) == "000003"
    src.close()


def test_header_frame_count_is_verified(tmp_path):
    """A truncated file whose header still announces every frame: the count is what can be decoded."""
    p = write_video(tmp_path / "cut.avi", 30, "MJPG", W=160, H=120)
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * 0.6)])
    cap = cv2.VideoCapture(str(p))
    header = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    decodable = 0
    while cap.read()[0]:
        decodable += 1
    cap.release()
    assert decodable < 30 and header == 30
    src = VideoFile(p)
    assert src.header_frames == 30 and src.num_frames == decodable and src.counted
    assert all(f is not None for _, f in src.frames())


@pytest.mark.parametrize("content", [b"", b"this is not a video" * 20])
def test_unreadable_video_names_the_file(tmp_path, content):
    p = tmp_path / "broken.mp4"
    p.write_bytes(content)
    with pytest.raises(VideoError, match="broken.mp4"):
        open_source(p)


def test_zero_frame_video(tmp_path):
    p = tmp_path / "empty.avi"
    w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 48))
    w.release()
    with pytest.raises(VideoError, match="empty.avi"):
        open_source(p)


def test_missing_paths_and_single_images(tmp_path):
    with pytest.raises(VideoError, match="does not exist"):
        open_source(tmp_path / "nope.mp4")
    write_images(tmp_path / "imgs", 2)
    with pytest.raises(VideoError, match="single image"):
        open_source(tmp_path / "imgs" / "img0.png")
    (tmp_path / "void").mkdir()
    with pytest.raises(VideoError, match="no image files"):
        open_source(tmp_path / "void")


def test_image_folder(tmp_path):
    folder = write_images(tmp_path / "view", 3, names=["f10.png", "f2.jpg", "f1.png"])
    (folder / "notes.txt").write_text("ignored")
    (folder / ".hidden.png").write_bytes(b"")
    src = open_source(folder)
    assert isinstance(src, ImageFolder)
    assert src.num_frames == 3 and src.size == (64, 48) and src.fps is None and src.name == "view"
    assert [p.name for p in src.files] == ["f1.png", "f2.jpg", "f10.png"]
    # file k was written with grey level 10 * k in the order f10, f2, f1
    assert src.read(0)[:, :20].mean() == pytest.approx(20, abs=1)
    assert src.read(2)[:, :20].mean() == pytest.approx(0, abs=1)
    assert src.read(1)[:, 40:, 0].mean() > 200
    assert src.frame_name(2) == "f10"


def test_image_folder_bad_frames(tmp_path):
    folder = write_images(tmp_path / "view", 3)
    cv2.imwrite(str(folder / "img1.png"), np.zeros((30, 30, 3), np.uint8))
    (folder / "img2.png").write_bytes(b"garbage")
    src = ImageFolder(folder)
    with pytest.raises(VideoError, match=r"img1.png is 30x30 px"):
        src.read(1)
    with pytest.raises(VideoError, match="img2.png"):
        src.read(2)
    frames = dict(src.frames())
    assert frames[0] is not None and frames[1] is None and frames[2] is None


def test_views_from_folders_and_lists(tmp_path):
    vids = tmp_path / "vids"
    vids.mkdir()
    for name in ["cam10.avi", "cam2.avi", "cam1.avi"]:
        write_video(vids / name, 5)
    views = open_views(vids)
    assert [v.name for v in views] == ["cam1", "cam2", "cam10"]
    nested = tmp_path / "nested"
    for name in ["b", "a"]:
        write_images(nested / name, 4)
    assert [v.name for v in open_views(nested)] == ["a", "b"]
    single = write_images(tmp_path / "single", 4)
    assert discover_views(single) == [single]
    assert [v.name for v in open_views([vids / "cam2.avi", nested / "a"])] == ["cam2", "a"]
    mixed = tmp_path / "mixed"
    write_images(mixed / "sub", 2)
    write_video(mixed / "v.avi", 3)
    with pytest.raises(VideoError, match="mixes"):
        open_views(mixed)
    with pytest.raises(VideoError, match="distinct names"):
        open_views([vids / "cam1.avi", vids / "cam1.avi"])


def test_frame_counts_of_views(tmp_path):
    a = ImageFolder(write_images(tmp_path / "a", 100))
    b = ImageFolder(write_images(tmp_path / "b", 98))
    c = ImageFolder(write_images(tmp_path / "c", 60))
    assert common_frame_count([a, a]) == 100
    with pytest.warns(VideoWarning, match="a: 100, b: 98"):
        assert common_frame_count([a, b]) == 98
    with pytest.raises(VideoError, match="a: 100, c: 60"):
        common_frame_count([a, c])
    with pytest.warns(VideoWarning):
        assert common_frame_count([a, c], tolerance=40) == 60
