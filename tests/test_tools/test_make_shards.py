"""tools/make_shards.py: class folders, flat folders and annotation lists
into WebDataset tar shards with wids's index; deterministic, bytes copied,
resumable after an interruption, verified."""
import filecmp
import json
import os
import os.path as osp
import tarfile

import pytest
from tiny import run_tool

from mvp_mm.datasets import shard_writer
from mvp_mm.datasets.shard_index import load_shard_index
from mvp_mm.utils import make_imagenet_folder

SHARD_MB = 0.012  # ~12 KB: the 12 images of 32 px make several shards


@pytest.fixture(scope='module')
def source(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('src'))
    make_imagenet_folder(root, num_classes=3, images_per_class=4,
                         image_size=32)
    return osp.join(root, 'train')


def _files(folder):
    """The shards and their member tables."""
    return sorted(f for f in os.listdir(folder) if f.startswith('shard-'))


def _tars(folder):
    return [f for f in _files(folder) if f.endswith('.tar')]


def _make(*args):
    run_tool('make_shards.py', *args)


def test_class_folders_deterministic_bytes_copied_and_verified(
        source, tmp_path, capsys):
    _make(source, tmp_path / 'a', '--shard-size', SHARD_MB)
    printed = capsys.readouterr().out
    assert 'make_shards (' in printed and '12 images (class folders, with ' \
        'labels)' in printed and 'every shard verified' in printed
    _make(source, tmp_path / 'b', '--shard-size', SHARD_MB)
    shards = _tars(tmp_path / 'a')
    assert len(shards) >= 3 and _files(tmp_path / 'a') == _files(
        tmp_path / 'b') == sorted(
            shards + [n[:-4] + '.members.npy' for n in shards])
    for name in _files(tmp_path / 'a') + ['shardindex.json']:
        assert filecmp.cmp(tmp_path / 'a' / name, tmp_path / 'b' / name,
                           shallow=False), name

    index = load_shard_index(str(tmp_path / 'a' / 'shardindex.json'))
    assert index['__kind__'] == 'wids-shard-index-v1'
    assert sum(s['nsamples'] for s in index['shardlist']) == 12
    assert all(s['filesize'] <= SHARD_MB * 1e6 for s in index['shardlist'])
    assert index['mvp_mm']['classes'] == ['n00000000', 'n00000001',
                                          'n00000002']
    files = sorted(osp.join(c, f) for c in sorted(os.listdir(source))
                   for f in sorted(os.listdir(osp.join(source, c))))
    members = []
    for name in shards:
        with tarfile.open(tmp_path / 'a' / name) as tar:
            for info in tar.getmembers():
                assert (info.mtime, info.uid, info.gid, info.mode,
                        info.uname) == (0, 0, 0, 0o644, '')
                members.append((info.name, tar.extractfile(info).read()))
    assert [n for n, _ in members[:4]] == [
        '000000000.jpg', '000000000.cls', '000000001.jpg', '000000001.cls']
    for i, path in enumerate(files):  # each file's bytes, its class index
        with open(osp.join(source, path), 'rb') as f:
            assert members[2 * i][1] == f.read()
        assert members[2 * i + 1][1] == str(i // 4).encode()


def test_interrupted_conversion_resumes_to_the_same_shards(source, tmp_path):
    whole = str(tmp_path / 'whole')
    shard_writer.convert_to_shards(source, whole, SHARD_MB)
    out = str(tmp_path / 'out')
    copied = []

    def interrupt(nbytes):
        copied.append(nbytes)
        if len(copied) == 7:  # in the middle of a later shard
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        shard_writer.convert_to_shards(source, out, SHARD_MB,
                                       progress=interrupt)
    assert not osp.exists(osp.join(out, 'shardindex.json'))
    assert any(f.endswith('.partial') for f in os.listdir(out))
    finished = len(_tars(out))
    assert finished >= 1
    result = shard_writer.convert_to_shards(source, out, SHARD_MB)
    assert result['kept'] == finished
    assert result['written'] == result['shards'] - finished
    assert _files(out) == _files(whole)  # no partial file left
    for name in _files(out) + ['shardindex.json']:
        assert filecmp.cmp(osp.join(out, name), osp.join(whole, name),
                           shallow=False)
    assert shard_writer.verify_index(out) == []

    # A damaged finished shard fails verification and is redone.
    damaged = osp.join(out, _tars(out)[1])
    with open(damaged, 'r+b') as f:
        f.seek(700)
        f.write(b'X')
    assert any('md5' in p for p in shard_writer.verify_index(out))
    result = shard_writer.convert_to_shards(source, out, SHARD_MB)
    assert (result['written'], result['kept']) == (1, result['shards'] - 1)
    assert filecmp.cmp(damaged, osp.join(whole, osp.basename(damaged)),
                       shallow=False)


def test_verify_compares_every_member_with_its_source(source, tmp_path,
                                                      capsys):
    out = tmp_path / 'out'
    _make(source, out, '--shard-size', SHARD_MB)
    _make(source, out, '--shard-size', SHARD_MB, '--verify')
    assert 'matches' in capsys.readouterr().out
    first = out / _tars(out)[0]
    with open(first, 'r+b') as f:  # inside the first image's data
        f.seek(600)
        f.write(b'X')
    with pytest.raises(SystemExit):
        _make(source, out, '--shard-size', SHARD_MB, '--verify')
    printed = capsys.readouterr().out
    assert f'{first}: member 000000000 differs from its source' in printed


def test_flat_folder_and_annotation_list(tmp_path):
    root = str(tmp_path / 'in')
    make_imagenet_folder(root, num_classes=2, images_per_class=3,
                         image_size=32)
    flat = osp.join(root, 'train', 'n00000000')  # images, no sub-folders
    result = shard_writer.convert_to_shards(flat, str(tmp_path / 'flat'))
    assert (result['layout'], result['labelled'],
            result['samples']) == ('flat folder', False, 3)
    with tarfile.open(tmp_path / 'flat' / 'shard-000000.tar') as tar:
        assert tar.getnames() == ['000000000.jpg', '000000001.jpg',
                                  '000000002.jpg']
    # A list in its own order (not sorted), with its labels.
    names = sorted(osp.join(c, f) for c in ('n00000000', 'n00000001')
                   for f in os.listdir(osp.join(root, 'train', c)))[::-1]
    ann = str(tmp_path / 'train.txt')
    with open(ann, 'w') as f:
        f.write(''.join(f'{n} {7 + i}\n' for i, n in enumerate(names)))
    run_tool('make_shards.py', osp.join(root, 'train'), tmp_path / 'ann',
             '--ann-file', ann)
    with tarfile.open(tmp_path / 'ann' / 'shard-000000.tar') as tar:
        first = tar.extractfile('000000000.jpg').read()
        assert tar.extractfile('000000005.cls').read() == b'12'
    with open(osp.join(root, 'train', names[0]), 'rb') as f:
        assert first == f.read()
    with open(tmp_path / 'ann' / 'shardindex.json') as f:
        assert json.load(f)['mvp_mm']['layout'] == 'annotation list'


def test_ambiguous_or_empty_source_is_a_clear_error(tmp_path):
    root = str(tmp_path / 'in')
    make_imagenet_folder(root, num_classes=1, images_per_class=2,
                         image_size=32)
    train = osp.join(root, 'train')
    os.rename(osp.join(train, 'n00000000', 'n00000000_0000.JPEG'),
              osp.join(train, 'loose.JPEG'))
    with pytest.raises(ValueError, match='holds images .*loose.JPEG.* and '
                       'sub-folders .*--no-labels'):
        shard_writer.convert_to_shards(train, str(tmp_path / 'out'))
    result = shard_writer.convert_to_shards(train, str(tmp_path / 'out'),
                                            with_label=False)
    assert (result['samples'], result['labelled']) == (2, False)
    os.makedirs(tmp_path / 'empty')
    with pytest.raises(FileNotFoundError, match='No images'):
        shard_writer.convert_to_shards(str(tmp_path / 'empty'),
                                       str(tmp_path / 'out2'))
