"""Package layout (everything else is in pyproject.toml).

envs/, policies/ and sim_assets/ live at the top level of the repo (see DESIGN.md) but
install inside the package namespace, as embodied_mm.envs, embodied_mm.policies and
embodied_mm.sim_assets, so nothing generic lands in a user's site-packages.
"""

from setuptools import find_packages, setup

MAPPED = {"envs": "embodied_mm.envs", "policies": "embodied_mm.policies"}
MAPPED_DATA = {"sim_assets": "embodied_mm.sim_assets"}


def _mapped(src: str, dst: str) -> list[str]:
    return [dst] + [f"{dst}.{sub}" for sub in find_packages(src)]


packages = find_packages(include=["embodied_mm", "embodied_mm.*"])
package_dir = {"embodied_mm": "embodied_mm"}
for src, dst in {**MAPPED, **MAPPED_DATA}.items():
    packages += _mapped(src, dst)
    package_dir[dst] = src

setup(
    packages=packages,
    package_dir=package_dir,
    package_data={dst: ["**/*"] for dst in MAPPED_DATA.values()},
    include_package_data=True,
)
