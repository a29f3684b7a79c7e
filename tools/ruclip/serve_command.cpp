// `ruclip serve`: the index's search page and its JSON API over HTTP
// (libsoup 3, Debian libsoup-3.0-dev), for people who look at the results
// in a browser:
//
//   GET  /                        the page (search_page.h): a query box, a
//                                 picture upload, camera and time filters,
//                                 a grid of hits; /?q=... searches at once
//   GET  /api/search?q=TEXT[&camera=NAME]...[&since=T][&until=T][&top=N]
//   POST /api/search[?camera=...]  a picture as the body: search by picture
//                                 (both answer `ruclip search`'s JSON)
//   GET  /api/cameras             the index's cameras and files
//   GET  /api/neighbours?sample=ID[&n=N]   the samples around one in time
//   GET  /api/thumbnail/ID        a sample's JPEG, by id only: nothing the
//                                 request names reaches the file system
//   GET  /api/frame/ID            its larger frame (ruclipindex frame-width),
//                                 or the thumbnail where none was kept
//
// It listens on 127.0.0.1 unless told otherwise; listening on any other
// address needs --token (or --token-file), which every request must carry:
// "Authorization: Bearer TOKEN", the cookie it sets, or ?token=TOKEN (the
// page's address; answered with the cookie, so later requests carry it).
// Without a token, only requests addressed to 127.0.0.1 or localhost are
// answered (a page that rebinds its DNS name to 127.0.0.1 is refused).
// Both are checked before a request's body is read, which is at most 32 MiB.
// Requests are served one at a time on the main loop.
#include <libsoup/soup.h>

#include <cstring>
#include <functional>
#include <fstream>
#include <iostream>
#include <memory>

#include "cli.h"
#include "index_search.h"
#include "ruclip/error.h"
#include "ruclip/labels.h"
#include "ruclip/tools/image_files.h"
#include "search_page.h"

namespace ruclip_cli {
namespace {

constexpr const char* kCookie = "ruclip_token";
constexpr goffset kMaxUpload = 32 << 20;

struct Server {
  IndexSearcher* searcher;
  std::string token;  // empty: none asked
};

// The query's parameters, a repeated name kept as many values.
std::multimap<std::string, std::string> query_params(SoupServerMessage* msg) {
  std::multimap<std::string, std::string> out;
  const char* query = g_uri_get_query(soup_server_message_get_uri(msg));
  if (!query) return out;
  GUriParamsIter iter;
  g_uri_params_iter_init(&iter, query, -1, "&", G_URI_PARAMS_WWW_FORM);
  char *name = nullptr, *value = nullptr;
  while (g_uri_params_iter_next(&iter, &name, &value, nullptr)) {
    out.emplace(name, value ? value : "");
    g_free(name);
    g_free(value);
  }
  return out;
}

std::string param(const std::multimap<std::string, std::string>& params, const std::string& name) {
  const auto it = params.find(name);
  return it == params.end() ? "" : it->second;
}

// Compares without leaking where the first difference is.
bool same_secret(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

// Without a token the server trusts being on loopback, so it answers only
// requests addressed to a loopback name: a web page that rebinds its own
// DNS name to 127.0.0.1 sends its own name as Host and is refused.
bool loopback_host(SoupServerMessage* msg) {
  const char* host = soup_message_headers_get_one(soup_server_message_get_request_headers(msg), "Host");
  if (!host) return false;
  std::string name = host;
  if (!name.empty() && name.front() == '[') {
    name = name.substr(0, name.find(']') + 1);
  } else if (const size_t colon = name.rfind(':'); colon != std::string::npos) {
    name.resize(colon);
  }
  return name == "127.0.0.1" || name == "localhost" || name == "[::1]";
}

bool authorized(const Server& s, SoupServerMessage* msg, const std::multimap<std::string, std::string>& params) {
  if (s.token.empty()) return loopback_host(msg);
  SoupMessageHeaders* headers = soup_server_message_get_request_headers(msg);
  if (const char* auth = soup_message_headers_get_one(headers, "Authorization");
      auth && g_str_has_prefix(auth, "Bearer ") && same_secret(auth + 7, s.token))
    return true;
  if (const char* cookies = soup_message_headers_get_one(headers, "Cookie")) {
    // "a=1; ruclip_token=T; b=2"
    const std::string prefix = std::string(kCookie) + "=";
    for (const std::string& part : ruclip::split_list(cookies)) {
      const size_t start = part.find_first_not_of(' ');
      if (start != std::string::npos && part.compare(start, prefix.size(), prefix) == 0 &&
          same_secret(part.substr(start + prefix.size()), s.token))
        return true;
    }
  }
  if (same_secret(param(params, "token"), s.token)) {
    // The page's address carried it: later requests carry the cookie.
    const std::string cookie = std::string(kCookie) + "=" + s.token + "; Path=/; HttpOnly; SameSite=Strict";
    soup_message_headers_append(soup_server_message_get_response_headers(msg), "Set-Cookie", cookie.c_str());
    return true;
  }
  return false;
}

void reply(SoupServerMessage* msg, unsigned status, const char* type, const std::string& body) {
  soup_server_message_set_status(msg, status, nullptr);
  soup_server_message_set_response(msg, type, SOUP_MEMORY_COPY, body.data(), body.size());
}

void reply_json(SoupServerMessage* msg, unsigned status, const json& body) {
  // A file name that is not UTF-8 (Linux allows any bytes) must not fail the answer.
  reply(msg, status, "application/json; charset=utf-8", body.dump(-1, ' ', false, json::error_handler_t::replace));
}

SearchFilters filters_of(const std::multimap<std::string, std::string>& params) {
  SearchFilters f;
  const auto cameras = params.equal_range("camera");
  for (auto it = cameras.first; it != cameras.second; ++it)
    if (!it->second.empty()) f.cameras.push_back(it->second);
  f.since = param(params, "since");
  f.until = param(params, "until");
  const std::string top = param(params, "top");
  if (!top.empty()) {
    char* end = nullptr;
    const long n = std::strtol(top.c_str(), &end, 10);
    if (*end || n < 1 || n > 500) throw ruclip::Error("top '" + top + "': expected 1 to 500");
    f.top = static_cast<int>(n);
  }
  return f;
}

// Before the body is read: who asks, and how much it sends. Setting a
// status here answers at once; the body is never read.
void check_early(SoupServer*, SoupServerMessage* msg, const char*, GHashTable*, gpointer data) {
  const Server& s = *static_cast<Server*>(data);
  if (!authorized(s, msg, query_params(msg))) {
    reply_json(msg, s.token.empty() ? SOUP_STATUS_FORBIDDEN : SOUP_STATUS_UNAUTHORIZED,
               {{"error", s.token.empty() ? "requests must name this server as 127.0.0.1 or localhost"
                                          : "a token is needed (ruclip serve --token)"}});
    return;
  }
  SoupMessageHeaders* headers = soup_server_message_get_request_headers(msg);
  const SoupEncoding encoding = soup_message_headers_get_encoding(headers);
  if (encoding == SOUP_ENCODING_CHUNKED || encoding == SOUP_ENCODING_EOF)
    reply_json(msg, SOUP_STATUS_LENGTH_REQUIRED, {{"error", "send the picture with a Content-Length"}});
  else if (encoding == SOUP_ENCODING_CONTENT_LENGTH && soup_message_headers_get_content_length(headers) > kMaxUpload)
    reply_json(msg, SOUP_STATUS_REQUEST_ENTITY_TOO_LARGE, {{"error", "a picture of at most 32 MiB"}});
}

// A search, once more on a new connection where PostgreSQL's was lost (the
// server restarted).
json search_once_more(IndexSearcher* searcher, const std::function<json()>& search) {
  try {
    return search();
  } catch (const ruclip::Error& e) {
    if (std::string(e.what()).find("connection lost") == std::string::npos) throw;
    searcher->reopen();
    return search();
  }
}

void handle(SoupServer*, SoupServerMessage* msg, const char* path, GHashTable*, gpointer data) {
  const Server& s = *static_cast<Server*>(data);
  const auto params = query_params(msg);
  const std::string method = soup_server_message_get_method(msg);
  const std::string p = path;
  try {
    if (p == "/" && method == "GET") {
      reply(msg, SOUP_STATUS_OK, "text/html; charset=utf-8", kSearchPage);
    } else if (p == "/api/search" && (method == "GET" || method == "POST")) {
      const SearchFilters f = filters_of(params);
      std::vector<float> query;
      json out;
      if (method == "POST") {
        SoupMessageBody* body = soup_server_message_get_request_body(msg);
        GBytes* bytes = soup_message_body_flatten(body);
        gsize size = 0;
        const auto* data = static_cast<const uint8_t*>(g_bytes_get_data(bytes, &size));
        const std::vector<uint8_t> upload(data, data + size);
        g_bytes_unref(bytes);
        query = s.searcher->image_query(ruclip::decode_image(upload, "(the uploaded picture)").view());
        out = search_once_more(s.searcher, [&] { return s.searcher->search(query, f); });
        out["image"] = "(uploaded)";
      } else {
        const std::string text = param(params, "q");
        if (text.empty()) throw ruclip::Error("q: empty (the text to search for)");
        const std::vector<float> query_vector = s.searcher->text_query(text);
        out = search_once_more(s.searcher, [&] { return s.searcher->search(query_vector, f); });
        out["query"] = text;
      }
      reply_json(msg, SOUP_STATUS_OK, out);
    } else if (p == "/api/cameras" && method == "GET") {
      reply_json(msg, SOUP_STATUS_OK,
                 search_once_more(s.searcher, [&] { return json{{"sources", s.searcher->sources()}}; }));
    } else if (p == "/api/neighbours" && method == "GET") {
      const std::string id = param(params, "sample");
      const std::string n = param(params, "n");
      if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
        throw ruclip::Error("sample '" + id + "': expected a sample id");
      const int count = n.empty() ? 4 : std::clamp(std::atoi(n.c_str()), 0, 50);
      reply_json(msg, SOUP_STATUS_OK, {{"neighbours", s.searcher->neighbours(std::stoll(id), count)}});
    } else if ((g_str_has_prefix(p.c_str(), "/api/thumbnail/") || g_str_has_prefix(p.c_str(), "/api/frame/")) &&
               method == "GET") {
      const bool frame = g_str_has_prefix(p.c_str(), "/api/frame/");
      const std::string id = p.substr(p.rfind('/') + 1);
      if (id.empty() || id.size() > 18 || id.find_first_not_of("0123456789") != std::string::npos) {
        reply_json(msg, SOUP_STATUS_NOT_FOUND, {{"error", "no such thumbnail"}});
        return;
      }
      std::vector<uint8_t> jpeg;
      try {
        // The larger frame where one was kept, else the thumbnail.
        if (frame) jpeg = s.searcher->store().frame(std::stoll(id));
        if (jpeg.empty()) jpeg = s.searcher->store().thumbnail(std::stoll(id));
      } catch (const ruclip::Error&) {
        reply_json(msg, SOUP_STATUS_NOT_FOUND, {{"error", "no such thumbnail"}});
        return;
      }
      reply(msg, SOUP_STATUS_OK, "image/jpeg", std::string(jpeg.begin(), jpeg.end()));
    } else {
      reply_json(msg, SOUP_STATUS_NOT_FOUND, {{"error", "no such page: " + p}});
    }
  } catch (const ruclip::Error& e) {
    reply_json(msg, SOUP_STATUS_BAD_REQUEST, {{"error", e.what()}});
  } catch (const std::exception& e) {
    reply_json(msg, SOUP_STATUS_INTERNAL_SERVER_ERROR, {{"error", e.what()}});
  }
}

bool is_loopback(const std::string& host) {
  GInetAddress* a = g_inet_address_new_from_string(host.c_str());
  if (!a) return host == "localhost";
  const bool loop = g_inet_address_get_is_loopback(a);
  g_object_unref(a);
  return loop;
}

int serve(const Args& args) {
  const std::string db_path = args.required("db");
  const std::string listen = args.one("listen", "127.0.0.1:8080");
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) throw UsageError("option --listen '" + listen + "': expected HOST:PORT");
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  const std::string port_text = listen.substr(colon + 1);
  char* end = nullptr;
  const long port = std::strtol(port_text.c_str(), &end, 10);
  if (port_text.empty() || *end || port < 0 || port > 65535)
    throw UsageError("option --listen '" + listen + "': the port must be 0 to 65535");
  std::string token = args.one("token");
  if (const std::string file = args.one("token-file"); !file.empty()) {
    std::ifstream in(file);
    if (!in || !std::getline(in, token) || token.empty())
      throw ruclip::Error("--token-file '" + file + "': cannot read a token from its first line");
  }
  if (!is_loopback(host) && token.empty())
    throw UsageError("option --listen '" + listen +
                     "': listening beyond the loopback address needs --token or --token-file");
  ruclip::VectorStorage storage = ruclip::parse_vector_storage(args.one("storage", "float32"));
  IndexSearcher searcher(db_path, args.one("model"), model_options(args), storage, args.all("template"));
  print_warnings(searcher.model());

  Server state{&searcher, token};
  SoupServer* server = soup_server_new("server-header", "ruclip-serve", nullptr);
  soup_server_add_early_handler(server, nullptr, check_early, &state, nullptr);
  soup_server_add_handler(server, nullptr, handle, &state, nullptr);
  GInetAddress* address = host == "localhost" ? g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4)
                                              : g_inet_address_new_from_string(host.c_str());
  if (!address) {
    g_object_unref(server);
    throw UsageError("option --listen '" + listen + "': '" + host + "' is not an IP address");
  }
  GSocketAddress* socket_address = g_inet_socket_address_new(address, static_cast<guint16>(port));
  g_object_unref(address);
  GError* error = nullptr;
  const bool ok = soup_server_listen(server, socket_address, static_cast<SoupServerListenOptions>(0), &error);
  g_object_unref(socket_address);
  if (!ok) {
    const std::string message = error->message;
    g_error_free(error);
    g_object_unref(server);
    throw ruclip::Error("--listen '" + listen + "': " + message);
  }
  // The address actually bound (port 0: the system's choice), for scripts.
  GSList* uris = soup_server_get_uris(server);
  for (GSList* u = uris; u; u = u->next) {
    char* text = g_uri_to_string(static_cast<GUri*>(u->data));
    std::cout << json{{"listening", text}, {"db", searcher.store().location()}, {"model", searcher.model_dir()}}.dump()
              << std::endl;
    g_free(text);
  }
  g_slist_free_full(uris, reinterpret_cast<GDestroyNotify>(g_uri_unref));
  GMainLoop* loop = g_main_loop_new(nullptr, FALSE);
  g_main_loop_run(loop);  // until the process is stopped
  g_main_loop_unref(loop);
  g_object_unref(server);
  return 0;
}

}  // namespace

const Command kServe{"serve",
                     "ruclip serve --db FILE|URI [--listen 127.0.0.1:8080] [--token T | --token-file F] [--model DIR]",
                     {"db", "listen", "token", "token-file", "model", "storage", "template", "device", "threads",
                      "precision"},
                     serve};

}  // namespace ruclip_cli
