"""Export an MVP pre-trained backbone as a timm BEiT state dict (safetensors).

    python tools/export_timm.py work_dirs/mvp_vit-b16_300e_in1k/epoch_300.pth \
        mvp_vit-b16.safetensors

then, in any timm code base::

    model = timm.create_model(
        'beit_base_patch16_224', pretrained=True, num_classes=0,
        use_fc_norm=False,
        pretrained_cfg_overlay=dict(file='mvp_vit-b16.safetensors',
                                    num_classes=0))

The file's metadata holds the exact ``timm.create_model`` name and keyword
arguments; the tool loads the result into that timm model (strict) before
writing it, so a file it writes always loads. The arguments are checked
before the libraries are imported (tools/argument_checks.py).
"""
import argparse
import os

from argument_checks import existing_file, output_file


def parse_args():
    parser = argparse.ArgumentParser(
        description='Export an MVP backbone to timm (beit_*_patch16_224)')
    parser.add_argument(
        'checkpoint',
        type=existing_file('checkpoint', 'pass the .pth file that an MVP '
                           'pre-training run wrote under its work dir'),
        help='MVP pre-training checkpoint')
    parser.add_argument('out', type=output_file,
                        help='output .safetensors file')
    return parser.parse_args()


def give_default_mode(path: str) -> None:
    """safetensors creates its file with mode 0600; give it the mode any
    other new file gets: 0666 less the umask (0644 under umask 022)."""
    umask = os.umask(0)  # reading the umask means setting it: restore it
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def main():
    args = parse_args()  # before the imports: --help and errors at once
    import timm
    from mmengine.logging import print_log
    from safetensors.torch import save_file

    from mvp_mm.analysis.checkpoint import load_state_dict
    from mvp_mm.export import mmpretrain_beit_to_timm, timm_metadata
    state_dict, name, kwargs = mmpretrain_beit_to_timm(
        load_state_dict(args.checkpoint))
    model = timm.create_model(name, pretrained=False, **kwargs)
    model.load_state_dict(state_dict, strict=True)  # raises on any mismatch
    save_file({k: v.contiguous() for k, v in state_dict.items()}, args.out,
              metadata=timm_metadata(name, kwargs))
    give_default_mode(args.out)
    call_args = ', '.join(f'{k}={v!r}' for k, v in kwargs.items())
    print_log(
        f'Wrote {len(state_dict)} tensors to {args.out}. Load with '
        f'timm.create_model({name!r}, pretrained=True, '
        f"pretrained_cfg_overlay=dict(file={args.out!r}, num_classes=0), "
        f'{call_args})', logger='current')


if __name__ == '__main__':
    main()
