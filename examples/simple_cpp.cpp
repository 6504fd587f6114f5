// simple_cpp: simple_c in C++. A broker on 127.0.0.1:10000, "bob"
// accepting forwards, and "alice" forwarding 127.0.0.1:8022 to port 22 on
// bob, all on one event_base. While it runs, `ssh -p 8022 user@127.0.0.1`
// reaches this machine's sshd through natter. Ctrl-C stops it.
//
//   simple_cpp [--check] [LOCALPORT]
//
// LOCALPORT replaces 8022. --check exits 0 as soon as both clients have
// checked in at the broker, or 1 after 10 s; the broker then takes any
// free UDP port.
//
// natter.h is a C header with extern "C" guards; here every library
// object lives in a std::unique_ptr whose deleter is its natter_*_free(),
// and the C callbacks are captureless lambdas forwarding to a member.
//
// Build against an installed libnatter:
//   c++ simple_cpp.cpp $(pkg-config --cflags --libs natter) -o simple_cpp
#include <event2/event.h>
#include <natter.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

namespace {

constexpr int kCheckTimeoutSeconds = 10;

struct EventBaseFree {
  void operator()(event_base *b) const {
    event_base_free(b);
  }
};
struct EventFree {
  void operator()(event *e) const {
    event_free(e);
  }
};
struct BrokerFree {
  void operator()(natter_broker *b) const {
    natter_broker_free(b);
  }
};
struct ClientFree {
  void operator()(natter_client *c) const {
    natter_client_free(c);
  }
};
using EventBasePtr = std::unique_ptr<event_base, EventBaseFree>;
using EventPtr = std::unique_ptr<event, EventFree>;
using BrokerPtr = std::unique_ptr<natter_broker, BrokerFree>;
using ClientPtr = std::unique_ptr<natter_client, ClientFree>;

// Throws with natter_strerror()'s text when a natter call failed.
void check(int rv, const std::string &what) {
  if (rv != NATTER_OK) {
    throw std::runtime_error(what + ": " + natter_strerror(rv));
  }
}

class App;

// One broker or client: its name for log lines, and its events.
class Role {
public:
  Role(App &app, std::string name) : app_(app), name_(std::move(name)) {
  }

  // natter_log_fn and natter_event_fn are plain C function pointers:
  // captureless lambdas convert to them, and user_data brings |this| back.
  static void log(natter_log_level, const char *line, void *user_data) {
    std::fprintf(stderr, "%-6s %s\n",
                 static_cast<Role *>(user_data)->name_.c_str(), line);
  }
  static void event(natter_client *, const natter_event *ev, void *user_data) {
    static_cast<Role *>(user_data)->on_event(*ev);
  }

  bool checked_in() const {
    return checked_in_;
  }
  const std::string &name() const {
    return name_;
  }

private:
  void on_event(const natter_event &ev);

  App &app_;
  std::string name_;
  bool checked_in_ = false;
};

class App {
public:
  App(bool check, uint16_t local_port)
      : check_(check), local_port_(local_port), broker_role_(*this, "broker"),
        bob_role_(*this, "bob"), alice_role_(*this, "alice") {
  }

  int run();
  void stop(int exit_code) {
    exit_code_ = exit_code;
    event_base_loopbreak(base_.get());
  }
  void checked_in() {
    if (check_ && bob_role_.checked_in() && alice_role_.checked_in()) {
      std::printf("simple_cpp: bob and alice checked in\n");
      stop(0);
    }
  }

private:
  bool check_;
  uint16_t local_port_;
  int exit_code_ = 0;
  Role broker_role_, bob_role_, alice_role_;
  // Declared base first: members are destroyed in reverse order, so the
  // clients, the broker and the events go before their event_base.
  EventBasePtr base_;
  EventPtr sigint_, sigterm_, timeout_;
  BrokerPtr broker_;
  ClientPtr bob_, alice_;
};

// Events arrive from inside the loop; the client must not be freed here,
// so a fatal event only stops the loop and run() returns.
void Role::on_event(const natter_event &ev) {
  switch (ev.type) {
  case NATTER_EVENT_CHECKED_IN:
    checked_in_ = true;
    app_.checked_in();
    break;
  case NATTER_EVENT_FATAL:
    std::fprintf(stderr, "simple_cpp: %s gave up: %s\n", name_.c_str(),
                 ev.message);
    app_.stop(1);
    break;
  default:
    break;
  }
}

int App::run() {
  base_.reset(event_base_new());
  if (!base_) {
    throw std::runtime_error("cannot create an event_base");
  }

  // The library installs no signal handler: the application does.
  auto on_signal = [](evutil_socket_t, short, void *arg) {
    static_cast<App *>(arg)->stop(0);
  };
  sigint_.reset(evsignal_new(base_.get(), SIGINT, on_signal, this));
  sigterm_.reset(evsignal_new(base_.get(), SIGTERM, on_signal, this));
  event_add(sigint_.get(), nullptr);
  event_add(sigterm_.get(), nullptr);

  // identity_file "" gives ephemeral in-memory keys and registry "" keeps
  // names in memory: nothing is written.
  natter_broker_config bcfg;
  natter_broker_config_default(&bcfg);
  bcfg.listen = check_ ? "127.0.0.1:0" : "127.0.0.1:10000";
  bcfg.identity_file = "";
  bcfg.registry = "";
  bcfg.log = Role::log;
  bcfg.user_data = &broker_role_;
  natter_broker *broker = nullptr;
  check(natter_broker_new(&broker, base_.get(), &bcfg), "broker");
  broker_.reset(broker);
  std::string broker_addr =
      "127.0.0.1:" + std::to_string(natter_broker_port(broker_.get()));

  // bob admits alice only (the broker is open); both pin its key.
  static const char *const peers[] = {"alice", nullptr};
  natter_client_config ccfg;
  natter_client_config_default(&ccfg);
  ccfg.name = "bob";
  ccfg.broker = broker_addr.c_str(); // copied by natter_client_new()
  ccfg.broker_key = natter_broker_fingerprint(broker_.get());
  ccfg.allow_peers = peers;
  ccfg.identity_file = "";
  ccfg.listen = 1;
  ccfg.log = Role::log;
  ccfg.on_event = Role::event;
  ccfg.user_data = &bob_role_;
  natter_client *client = nullptr;
  check(natter_client_new(&client, base_.get(), &ccfg), "bob");
  bob_.reset(client);

  ccfg.name = "alice";
  ccfg.listen = 0;
  ccfg.user_data = &alice_role_;
  check(natter_client_new(&client, base_.get(), &ccfg), "alice");
  alice_.reset(client);

  // The same forward as the CLI's "8022:bob:22"; the forward belongs to
  // alice and goes away with her.
  std::string spec = std::to_string(local_port_) + ":bob:22";
  char err[256];
  if (natter_client_add_forward_spec(alice_.get(), spec.c_str(), nullptr,
                                     nullptr, err, sizeof(err)) != 0) {
    throw std::runtime_error(err);
  }

  if (check_) {
    timeout_.reset(evtimer_new(
        base_.get(),
        [](evutil_socket_t, short, void *arg) {
          std::fprintf(stderr,
                       "simple_cpp: clients not checked in after %d s\n",
                       kCheckTimeoutSeconds);
          static_cast<App *>(arg)->stop(1);
        },
        this));
    timeval tv = {kCheckTimeoutSeconds, 0};
    evtimer_add(timeout_.get(), &tv);
  } else {
    std::printf("simple_cpp: ssh -p %u user@127.0.0.1 now reaches port 22 "
                "here through natter; Ctrl-C stops\n",
                static_cast<unsigned>(local_port_));
    std::fflush(stdout);
  }
  event_base_dispatch(base_.get());
  return exit_code_;
}

} // namespace

int main(int argc, char **argv) {
  bool check = false;
  long local_port = 8022;
  for (int i = 1; i < argc; i++) {
    char *end;
    if (std::strcmp(argv[i], "--check") == 0) {
      check = true;
      continue;
    }
    local_port = std::strtol(argv[i], &end, 10);
    if (*end != '\0' || local_port < 1 || local_port > 65535) {
      std::fprintf(stderr, "usage: simple_cpp [--check] [LOCALPORT]\n");
      return 2;
    }
  }
  try {
    App app(check, static_cast<uint16_t>(local_port));
    return app.run();
  } catch (const std::exception &e) {
    std::fprintf(stderr, "simple_cpp: %s\n", e.what());
    return 1;
  }
}
