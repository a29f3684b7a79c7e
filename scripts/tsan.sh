#!/usr/bin/env bash
# Under ThreadSanitizer, in ./build-tsan: concurrent encode calls on one
# model for every CPU kernel (tests/test_model_concurrency.cpp), the shared
# scheduler's and model registry's tests (tests/test_scheduler.cpp, every one: streams submitting
# from their own threads, flushes during drains, label rebuilds, closes), and
# the element tests that drive ruclipfilter from several threads at once (an
# application thread setting properties while frames stream, many streams
# sharing one model, EOS drains, flushes, state cycles). A race TSan reports in our code (gst-plugin/, core/) fails the
# run; tests/tsan.supp only holds entries for libraries that are not ours.
# Extra arguments go to the test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
if [ ! -f build-tsan/build.ninja ]; then
  meson setup build-tsan --buildtype=debugoptimized -Db_sanitize=thread -Db_lundef=false
fi
# the SentencePiece module: the shipped model's tokenizer (the many-streams test)
ninja -C build-tsan -j "$(nproc)" tests/test_element tests/test_scheduler tests/test_model_concurrency gst-plugin/libgstruclip.so core/ruclip-sentencepiece.so

export GST_PLUGIN_PATH="$PWD/build-tsan/gst-plugin"
# Load plugins in this process: the (uninstrumented) plugin scanner can't load them.
export GST_REGISTRY_FORK=no GST_REGISTRY_1_0="$PWD/build-tsan/gst-registry.bin"
export RUCLIP_TEST_DATA="$PWD/tests/data" RUCLIP_EXE="$PWD/build-tsan/tools/ruclip"
# GLib's slice allocator moves memory between threads under futex locks TSan
# can't see (GLib is not instrumented): plain malloc, which TSan tracks.
export G_SLICE=always-malloc
# ignore_noninstrumented_modules: malloc/memcpy/... called from GLib, GStreamer,
# LibTorch are not taken as accesses (their synchronisation is invisible to TSan);
# our code's accesses are all checked. Any report: exit status 66.
export TSAN_OPTIONS="halt_on_error=0 exitcode=66 second_deadlock_stack=1 ignore_noninstrumented_modules=1 suppressions=$PWD/tests/tsan.supp"
tests="Element.RuntimeLabelChangeSwapsWholeSets:Element.BadRuntimeLabelsKeepTheOldOnes"
tests+=":Element.PropertiesChangeFromAnotherThreadWhileStreaming:Element.LabelsSetDuringStateChangesAreApplied"
tests+=":Element.FrequentLabelChangesDoNotStarveAnalysisOrEos:Element.AsyncAppliesRuntimeReportingProperties"
tests+=":Element.AsyncResultsRideOnLaterBuffersAndEosDrains:Element.FlushDropsPendingAndStaleResults"
tests+=":Element.AsyncAddsNoLatencyOnALiveSourceWithASlowModel:Element.HundredPlayingNullCycles"
tests+=":Element.ManyLiveStreamsShareOneModelAndKeepTheirOwnResults:Element.FlushDuringEosDrainWakesIt"
tests+=":Element.InstanceIdAndProcessWideThreads"
status=0
./build-tsan/tests/test_model_concurrency "$@" || status=$?
./build-tsan/tests/test_scheduler "$@" || status=$?
./build-tsan/tests/test_element --gtest_filter="$tests" "$@" || status=$?
exit $status
