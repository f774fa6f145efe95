// dqn_train: the CartPole DQN of chapters/dqn_port.md, trained in eager
// libtorch from C++, with no Python in the process.
//
// The honest counterpart of the Rust column of the chapter the projects part
// follows: that column ran the *training program* from a compiled language
// (tch-rs, libtorch's eager API), so Python's dispatch of every operation and
// of the optimizer was gone. This program does the same with libtorch's C++
// API, and times where it spends its time.
//
// Same as the page's `train_port` (PortConfig's defaults): CartPole-v1's
// physics and time limit (Gymnasium's equations, Euler steps of 0.02 s, 500
// steps), a 4-128-128-2 ReLU network with PyTorch's default initialisation,
// Adam (lr 1e-3), a replay memory of 10,000 transitions sampled uniformly in
// batches of 64, one gradient step per environment step once the memory
// holds a batch, the mean squared TD error against a target network copied
// every 10 episodes, epsilon from 1.0 times 0.98 per episode down to 0.01,
// and terminal only when the pole falls (a time-out keeps its bootstrap).
// Not the same: the random streams (std::mt19937_64 and libtorch's
// generator, not NumPy's and the page's), so the two programs learn from
// different episodes; compare their time per step, not their returns.
//
//   dqn_train [--episodes 500] [--seed 0] [--threads 1]
//   dqn_train --physics X,X_DOT,THETA,THETA_DOT ACTIONS
//
// The second form checks the CartPole equations alone (the tests hold them
// against Gymnasium's): from the given state it applies ACTIONS (a string
// of 0s and 1s) and prints one JSON list with, per step, the observation
// and whether the episode terminated.
//
// Prints one JSON line: episodes, environment and gradient steps, wall and
// CPU seconds, and the wall and CPU seconds of each part (environment,
// acting, storing, sampling, learning split into forward and loss, backward
// and the optimizer's step, target copies), the mean return of the last 100
// episodes, and what ran (threads, torch version, compiler).
#include <torch/torch.h>

#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU seconds of the whole process (all threads), as Python's
// time.process_time(): on a machine shared with other jobs, wall time counts
// their time too, CPU time much less.
double cpu_now() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Wall and CPU seconds charged to one part of the loop.
struct Part {
  double wall = 0, cpu = 0;
};

struct Stopwatch {
  Clock::time_point wall;
  double cpu;
  Stopwatch() : wall(Clock::now()), cpu(cpu_now()) {}
  void charge(Part& part) {
    auto now = Clock::now();
    double c = cpu_now();
    part.wall += std::chrono::duration<double>(now - wall).count();
    part.cpu += c - cpu;
    wall = now;
    cpu = c;
  }
};

// Gymnasium's CartPole-v1 (classic_control/cartpole.py), Euler integration.
struct CartPole {
  static constexpr double kGravity = 9.8, kMassCart = 1.0, kMassPole = 0.1;
  static constexpr double kTotalMass = kMassCart + kMassPole;
  static constexpr double kLength = 0.5;  // half the pole's length
  static constexpr double kPoleMassLength = kMassPole * kLength;
  static constexpr double kForce = 10.0, kTau = 0.02;
  static constexpr double kThetaLimit = 12 * 2 * M_PI / 360, kXLimit = 2.4;
  static constexpr int kMaxSteps = 500;

  double s[4] = {0, 0, 0, 0};  // x, x_dot, theta, theta_dot
  int steps = 0;

  void reset(std::mt19937_64& rng) {
    std::uniform_real_distribution<double> u(-0.05, 0.05);
    for (double& v : s) v = u(rng);
    steps = 0;
  }

  // reward 1 every step; terminated when the pole falls or the cart leaves
  // the track, truncated at the time limit
  void step(int action, bool& terminated, bool& truncated) {
    double force = action == 1 ? kForce : -kForce;
    double cos_t = std::cos(s[2]), sin_t = std::sin(s[2]);
    double temp = (force + kPoleMassLength * s[3] * s[3] * sin_t) / kTotalMass;
    double theta_acc =
        (kGravity * sin_t - cos_t * temp) /
        (kLength * (4.0 / 3.0 - kMassPole * cos_t * cos_t / kTotalMass));
    double x_acc = temp - kPoleMassLength * theta_acc * cos_t / kTotalMass;
    s[0] += kTau * s[1];
    s[1] += kTau * x_acc;
    s[2] += kTau * s[3];
    s[3] += kTau * theta_acc;
    steps += 1;
    terminated = s[0] < -kXLimit || s[0] > kXLimit || s[2] < -kThetaLimit ||
                 s[2] > kThetaLimit;
    truncated = !terminated && steps >= kMaxSteps;
  }

  void observe(float* out) const {
    for (int i = 0; i < 4; ++i) out[i] = static_cast<float>(s[i]);
  }
};

torch::nn::Sequential q_network() {
  return torch::nn::Sequential(
      torch::nn::Linear(4, 128), torch::nn::ReLU(), torch::nn::Linear(128, 128),
      torch::nn::ReLU(), torch::nn::Linear(128, 2));
}

// A ring of transitions in preallocated tensors, written in place.
struct Replay {
  torch::Tensor obs, action, reward, next_obs, terminated;
  int64_t capacity, size = 0, next = 0;

  explicit Replay(int64_t capacity_) : capacity(capacity_) {
    obs = torch::zeros({capacity, 4});
    next_obs = torch::zeros({capacity, 4});
    action = torch::zeros({capacity}, torch::kLong);
    reward = torch::zeros({capacity});
    terminated = torch::zeros({capacity});
  }

  void add(const float* o, int a, float r, const float* o2, bool term) {
    std::copy(o, o + 4, obs.data_ptr<float>() + next * 4);
    std::copy(o2, o2 + 4, next_obs.data_ptr<float>() + next * 4);
    action.data_ptr<int64_t>()[next] = a;
    reward.data_ptr<float>()[next] = r;
    terminated.data_ptr<float>()[next] = term ? 1.0f : 0.0f;
    next = (next + 1) % capacity;
    size = std::min(size + 1, capacity);
  }
};

struct Parts {
  Part env, act, store, sample, forward_loss, backward, optimizer, target_copy;
};

void print_part(const char* name, const Part& p, bool last = false) {
  std::printf("\"%s\": [%.6f, %.6f]%s", name, p.wall, p.cpu, last ? "" : ", ");
}

int parse_int(const char* flag, const char* value) {
  char* end = nullptr;
  long v = std::strtol(value, &end, 10);
  if (*value == '\0' || *end != '\0' || v < 0) {
    std::fprintf(stderr, "dqn_train: %s needs a non-negative integer, got %s\n",
                 flag, value);
    std::exit(2);
  }
  return static_cast<int>(v);
}

// `--physics`: step CartPole from a given state with given actions.
int physics(const char* state, const char* actions) {
  CartPole env;
  if (std::sscanf(state, "%lf,%lf,%lf,%lf", &env.s[0], &env.s[1], &env.s[2],
                  &env.s[3]) != 4) {
    std::fprintf(stderr, "dqn_train: --physics needs X,X_DOT,THETA,THETA_DOT\n");
    return 2;
  }
  std::printf("[");
  for (const char* a = actions; *a; ++a) {
    if (*a != '0' && *a != '1') {
      std::fprintf(stderr, "dqn_train: actions are 0s and 1s, got %c\n", *a);
      return 2;
    }
    bool terminated, truncated;
    env.step(*a - '0', terminated, truncated);
    std::printf("%s[%.17g, %.17g, %.17g, %.17g, %s]", a == actions ? "" : ", ",
                env.s[0], env.s[1], env.s[2], env.s[3],
                terminated ? "true" : "false");
  }
  std::printf("]\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--physics") {
    return physics(argv[2], argv[3]);
  }
  int episodes = 500, seed = 0, threads = 1;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "dqn_train: %s needs a value\n", flag.c_str());
      return 2;
    }
    if (flag == "--episodes") {
      episodes = parse_int("--episodes", argv[++i]);
    } else if (flag == "--seed") {
      seed = parse_int("--seed", argv[++i]);
    } else if (flag == "--threads") {
      threads = parse_int("--threads", argv[++i]);
    } else {
      std::fprintf(stderr,
                   "dqn_train: unknown argument %s (known: --episodes, "
                   "--seed, --threads)\n",
                   flag.c_str());
      return 2;
    }
  }
  const double gamma = 0.99, eps_end = 0.01, eps_decay = 0.98;
  const int64_t batch_size = 64, target_every = 10;

  torch::set_num_threads(std::max(threads, 1));
  torch::manual_seed(seed);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> coin(0.0, 1.0);

  auto q_net = q_network();
  auto target_net = q_network();
  {
    torch::NoGradGuard no_grad;
    auto src = q_net->parameters(), dst = target_net->parameters();
    for (size_t k = 0; k < src.size(); ++k) dst[k].copy_(src[k]);
  }
  torch::optim::Adam optimizer(q_net->parameters(),
                               torch::optim::AdamOptions(1e-3));
  Replay replay(10'000);
  CartPole env;
  Parts t;
  std::vector<double> returns;
  int64_t steps = 0, grad_steps = 0;
  double epsilon = 1.0;
  float obs[4], next_obs[4];

  auto start = Clock::now();
  double cpu_start = cpu_now();
  for (int episode = 0; episode < episodes; ++episode) {
    Stopwatch watch;
    env.reset(rng);
    env.observe(obs);
    watch.charge(t.env);
    double total = 0;
    while (true) {
      watch = Stopwatch();
      int action;
      if (coin(rng) < epsilon) {
        action = static_cast<int>(rng() % 2);
      } else {
        torch::NoGradGuard no_grad;
        auto x = torch::from_blob(obs, {4});
        action = static_cast<int>(q_net->forward(x).argmax().item<int64_t>());
      }
      watch.charge(t.act);

      bool terminated, truncated;
      env.step(action, terminated, truncated);
      env.observe(next_obs);
      watch.charge(t.env);

      replay.add(obs, action, 1.0f, next_obs, terminated);
      watch.charge(t.store);
      std::copy(next_obs, next_obs + 4, obs);
      total += 1.0;
      steps += 1;

      // [learn-begin]
      if (replay.size >= batch_size) {
        auto idx = torch::randint(replay.size, {batch_size}, torch::kLong);
        auto b_obs = replay.obs.index_select(0, idx);
        auto b_action = replay.action.index_select(0, idx);
        auto b_reward = replay.reward.index_select(0, idx);
        auto b_next = replay.next_obs.index_select(0, idx);
        auto b_term = replay.terminated.index_select(0, idx);
        watch.charge(t.sample);

        auto q = q_net->forward(b_obs)
                     .gather(1, b_action.unsqueeze(1))
                     .squeeze(1);
        torch::Tensor target;
        {
          torch::NoGradGuard no_grad;
          auto next_q = std::get<0>(target_net->forward(b_next).max(1));
          target = b_reward + gamma * (1.0 - b_term) * next_q;
        }
        auto loss = torch::mse_loss(q, target);
        watch.charge(t.forward_loss);

        optimizer.zero_grad();
        loss.backward();
        watch.charge(t.backward);

        optimizer.step();
        watch.charge(t.optimizer);
        grad_steps += 1;
      }
      // [learn-end]
      if (terminated || truncated) break;
    }
    returns.push_back(total);
    epsilon = std::max(eps_end, epsilon * eps_decay);
    if ((episode + 1) % target_every == 0) {
      Stopwatch copy_watch;
      torch::NoGradGuard no_grad;
      auto src = q_net->parameters(), dst = target_net->parameters();
      for (size_t k = 0; k < src.size(); ++k) dst[k].copy_(src[k]);
      copy_watch.charge(t.target_copy);
    }
  }
  double wall = seconds_since(start), cpu = cpu_now() - cpu_start;

  size_t last = std::min<size_t>(100, returns.size());
  double last_mean = 0;
  for (size_t k = returns.size() - last; k < returns.size(); ++k)
    last_mean += returns[k];
  last_mean /= static_cast<double>(std::max<size_t>(last, 1));

  std::printf(
      "{\"episodes\": %d, \"seed\": %d, \"threads\": %d, \"env_steps\": "
      "%lld, \"grad_steps\": %lld, \"seconds\": %.6f, \"cpu_seconds\": %.6f, "
      "\"parts_wall_cpu_seconds\": {",
      episodes, seed, torch::get_num_threads(), static_cast<long long>(steps),
      static_cast<long long>(grad_steps), wall, cpu);
  print_part("env", t.env);
  print_part("act", t.act);
  print_part("store", t.store);
  print_part("sample", t.sample);
  print_part("forward_loss", t.forward_loss);
  print_part("backward", t.backward);
  print_part("optimizer_step", t.optimizer);
  print_part("target_copy", t.target_copy, true);
  std::printf(
      "}, \"last_100_mean_return\": %.3f, \"torch\": \"%s\", "
      "\"compiler\": \"%s\"}\n",
      last_mean, TORCH_VERSION, __VERSION__);
  return 0;
}
