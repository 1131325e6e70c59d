"""What a build's output tells the engine module: the images the build made,
which are the ones to remove if it fails (canned output of Docker 20.10)."""

from __future__ import annotations

from gsc.engine import _BuildLog

BUILD_OUTPUT = """\
Step 1/9 : FROM sha256:ec10becd8034 AS gramine
 ---> ec10becd8034
Step 2/9 : COPY gsc-launch.c /gsc-launch/
 ---> Using cache
 ---> eb24ac0608aa
Step 3/9 : RUN cc -o /gsc-launch/gsc-launch /gsc-launch/gsc-launch.c
 ---> Running in 8a8f7976568c
Removing intermediate container 8a8f7976568c
 ---> 2f346d5f9166
Step 4/9 : FROM scratch AS runtime
 --->
Step 5/9 : COPY --from=gramine /gramine/meson_build_output /gramine/meson_build_output
 ---> f2c957a619c6
Step 6/9 : COPY --from=gramine /gsc-launch/gsc-launch /gramine/app_files/gsc-launch
 ---> d95d3e1096f0
Step 7/9 : FROM sha256:ee31fc0c9a53
 ---> ee31fc0c9a53
Step 8/9 : COPY --from=runtime /gramine /gramine
 ---> Using cache
 ---> 8ba585fd7074
Step 9/9 : LABEL gsc.debug="false"
 ---> Running in 1083e4f0d46f
Removing intermediate container 1083e4f0d46f
 ---> 917773dff430
Successfully built 917773dff430
"""


def test_the_images_a_build_made_are_all_recorded_and_no_others() -> None:
    shown: list[str] = []
    log = _BuildLog(shown.append)

    for line in BUILD_OUTPUT.splitlines(keepends=True):
        log.feed({"stream": line})

    assert log.layers == [
        "2f346d5f9166",
        "f2c957a619c6",
        "d95d3e1096f0",
        "917773dff430",
    ]
    assert log.containers == ["8a8f7976568c", "1083e4f0d46f"]
    assert shown == BUILD_OUTPUT.splitlines()
