"""The platforms the slow tier builds and checks the images for (tests/integration/test_images_multiarch.py),
with the ELF e_machine of each: hack/catalog.py's BUILT_PLATFORMS (what the Tasks may claim and
`make release` builds) stays within them (tests/unit/test_images.py)."""

PLATFORMS = ("linux/amd64", "linux/arm64")
MACHINES = {"linux/amd64": 62, "linux/arm64": 183}  # EM_X86_64, EM_AARCH64
