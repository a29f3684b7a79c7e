/* ruclippublish: publishes the labels ruclipfilter attaches to buffers
 * (RuClipMeta, see ruclipmeta.h) and its "ruclip-segment" events as JSON
 * documents, to a file or an MQTT broker, passing the stream through. */
#ifndef GST_RUCLIP_PUBLISH_H
#define GST_RUCLIP_PUBLISH_H

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS

#define GST_TYPE_RUCLIP_PUBLISH (gst_ruclip_publish_get_type ())
G_DECLARE_FINAL_TYPE (GstRuClipPublish, gst_ruclip_publish, GST, RUCLIP_PUBLISH, GstBaseTransform)

GST_ELEMENT_REGISTER_DECLARE (ruclippublish);

G_END_DECLS

#endif /* GST_RUCLIP_PUBLISH_H */
