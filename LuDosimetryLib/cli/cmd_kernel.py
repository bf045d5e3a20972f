"""``ludosimetry kernel``: write a dose voxel kernel with its units."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from .options import number

HELP = "write a dose voxel kernel (Gy per Bq·h of TIA in the source voxel) for any voxel size"


def add_arguments(parser) -> None:
    parser.add_argument("--nuclide", default="Lu-177", help="nuclide (default Lu-177, the only one with tables)")
    parser.add_argument("--voxel-size", nargs=3, type=number("mm", minimum=0), required=True, metavar=("X", "Y", "Z"),
                        help="voxel edges in millimetres (x y z)")
    parser.add_argument("--tissue", choices=("soft", "bone"), default="soft", help="medium (default soft tissue)")
    parser.add_argument("--no-photons", action="store_true", help="electrons only (no photon tail)")
    parser.add_argument("--radius-mm", type=number("mm", minimum=0), default=None, help="kernel radius in millimetres")
    parser.add_argument("--kernel-energy", choices=("icrp107", "table"), default="icrp107",
                        help="electron energy per decay: ICRP-107 (default) or the published S-value tables' own "
                             "(for comparisons with software using those tables; docs/kernels.md)")
    parser.add_argument("--out", required=True,
                        help="output file: .nii/.nii.gz (with a .json sidecar) or .txt/.csv (one octant)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing output file")


def run(args) -> int:
    from ..kernels import dose_kernel
    from ..kernels.io import write_kernel
    from ..results import check_output_path

    out = Path(args.out)
    check_output_path(out, [])
    if out.exists() and not args.force:
        raise InputError("exists; use --force to overwrite", source=str(out))
    kernel = dose_kernel(tuple(args.voxel_size), nuclide=args.nuclide, tissue=args.tissue,
                         photons=not args.no_photons, radius_mm=args.radius_mm, electron_energy=args.kernel_energy)
    for p in write_kernel(kernel, out):
        print(p)
    return 0
