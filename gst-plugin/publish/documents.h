// The JSON documents of ruclippublish: one per analysis, one per segment event.
#pragma once
#include <gst/gst.h>

#include <string>

// One result (RuClipMeta, ruclipmeta.h) as an "analysis" document; `segment`
// gives the running time of its frame.
std::string analysis_document (const std::string & stream, const GstStructure * result, const GstSegment * segment);
// A "ruclip-segment" structure as a "segment" document; empty when it is not one.
std::string segment_document (const std::string & stream, const GstStructure * s);
