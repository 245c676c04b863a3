package example;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;

/**
 * hello-java: a plain HTTP server on the JDK's built-in com.sun.net.httpserver (no framework),
 * for kiln's java baker. GET /healthz answers "ok"; every other path answers a JSON document
 * with what the image gave the process (KILN_ENV, GREETING, uid) and what it can see of its
 * root: whether / is writable, whether any shell is reachable, which JDK modules it runs on.
 */
public final class Hello {
  private static final List<String> SHELLS = List.of("/bin/sh", "/bin/bash", "/bin/busybox", "/usr/bin/sh", "/usr/bin/bash");

  public static void main(String[] args) throws IOException {
    int port = Integer.parseInt(System.getenv().getOrDefault("PORT", "8080"));
    HttpServer server = HttpServer.create(new InetSocketAddress("0.0.0.0", port), 64);
    server.createContext("/healthz", exchange -> send(exchange, "text/plain", "ok\n"));
    server.createContext("/", exchange -> send(exchange, "application/json", describe()));
    server.start();
    System.out.println("hello-java listening on " + port);
    Runtime.getRuntime().addShutdownHook(new Thread(() -> {
      System.out.println("hello-java: SIGTERM, stopping");
      server.stop(1);
    }));
  }

  private static String describe() {
    List<String> shells = new ArrayList<>();
    for (String shell : SHELLS) if (Files.exists(Path.of(shell))) shells.add(shell);
    String rootWrite;
    try {
      Files.writeString(Path.of("/kiln-write-probe"), "x");
      rootWrite = "written";
    } catch (IOException | RuntimeException e) {
      rootWrite = e.toString();
    }
    TreeSet<String> modules = new TreeSet<>();
    for (Module m : ModuleLayer.boot().modules()) modules.add(m.getName());
    return "{"
        + field("message", System.getenv().getOrDefault("GREETING", "hello from kiln (java)")) + ","
        + field("image", System.getenv("KILN_IMAGE")) + ","
        + field("env", System.getenv("KILN_ENV")) + ","
        + "\"uid\":" + uid() + ","
        + field("runtime", "java") + ","
        + field("java", System.getProperty("java.version")) + ","
        + field("rootWrite", rootWrite) + ","
        + "\"shells\":" + array(shells) + ","
        + "\"modules\":" + array(new ArrayList<>(modules))
        + "}\n";
  }

  /** The real uid, from /proc (Java has no getuid()). */
  private static long uid() {
    try {
      for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
        if (line.startsWith("Uid:")) return Long.parseLong(line.substring(4).trim().split("\\s+")[0]);
      }
    } catch (IOException | RuntimeException e) {
      // fall through
    }
    return -1;
  }

  private static void send(HttpExchange exchange, String type, String body) throws IOException {
    byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
    exchange.getResponseHeaders().set("Content-Type", type);
    exchange.sendResponseHeaders(200, bytes.length);
    try (OutputStream out = exchange.getResponseBody()) {
      out.write(bytes);
    }
  }

  private static String field(String name, String value) {
    return quote(name) + ":" + (value == null ? "null" : quote(value));
  }

  private static String array(List<String> values) {
    List<String> quoted = new ArrayList<>();
    for (String v : values) quoted.add(quote(v));
    return "[" + String.join(",", quoted) + "]";
  }

  private static String quote(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char c : s.toCharArray()) {
      if (c == '"' || c == '\\') b.append('\\').append(c);
      else if (c < 0x20) b.append(String.format("\\u%04x", (int) c));
      else b.append(c);
    }
    return b.append('"').toString();
  }
}
