/**
 * The load balancer's protections, as AWS Security Hub's foundational best practices expect:
 * invalid HTTP header fields dropped (ELB.4), an HTTPS listener with a TLS 1.2+/1.3 policy
 * (ELB.17) and an HTTP listener that only redirects to it (ELB.1). Observed for the plan (what
 * drifted) and converged by ensureInfrastructure, so a re-run puts back what was changed by hand.
 * Which target group a listener forwards to is not decided here (provider.ts does that).
 */
import type { AwsClients } from "../../aws/clients.js";
import {
  createListener,
  deleteListener,
  describeListeners,
  type ListenerFacts,
  type ListenerTls,
  loadBalancerAttributes,
  redirectHttpToHttps,
  setDeletionProtection,
  setListenerActions,
  setListenerTls,
  setLoadBalancerAttributes,
} from "../../aws/elbv2.js";
import type { AwsEnvironment } from "../../config/environments.js";

/** "Application Load Balancers", Elastic Load Balancing User Guide: load balancer attributes. */
export const DROP_INVALID_HEADERS = "routing.http.drop_invalid_header_fields.enabled";
const DELETION_PROTECTION = "deletion_protection.enabled";

export function listenerTls(env: AwsEnvironment): ListenerTls | undefined {
  return env.certificateArn ? { certificateArn: env.certificateArn, sslPolicy: env.sslPolicy ?? "" } : undefined;
}

interface LoadBalancerFacts {
  readonly attributes: Readonly<Record<string, string>>;
  readonly https: ListenerFacts | undefined;
  readonly http: ListenerFacts | undefined;
}

async function readFacts(clients: AwsClients, lbArn: string): Promise<LoadBalancerFacts> {
  const [attributes, listeners] = await Promise.all([loadBalancerAttributes(clients, lbArn), describeListeners(clients, lbArn)]);
  return { attributes, https: listeners.find((l) => l.protocol === "HTTPS"), http: listeners.find((l) => l.port === 80) };
}

/** What differs from the environment's settings, in words for the plan; empty when nothing does. */
export async function loadBalancerDrift(clients: AwsClients, env: AwsEnvironment, lbArn: string): Promise<string[]> {
  const { attributes, https, http } = await readFacts(clients, lbArn);
  const drift: string[] = [];
  if (attributes[DROP_INVALID_HEADERS] !== "true") drift.push("the load balancer keeps invalid HTTP header fields");
  const protectedNow = attributes[DELETION_PROTECTION] === "true";
  if (protectedNow !== env.deletionProtection)
    drift.push(
      `deletion protection is ${protectedNow ? "on" : "off"}, the environment asks for it ${env.deletionProtection ? "on" : "off"}`,
    );
  const tls = listenerTls(env);
  if (!tls) {
    // https was removed from the environment: 80 serves again and 443 goes.
    if (http?.redirectsToHttps) drift.push("the HTTP listener on 80 redirects to HTTPS, but the environment has no https");
    if (https) drift.push("an HTTPS listener on 443 remains from an earlier https setting");
    return drift;
  }
  if (!https) drift.push("there is no HTTPS listener on 443");
  else {
    if (https.sslPolicy !== tls.sslPolicy)
      drift.push(`the HTTPS listener has TLS policy ${https.sslPolicy ?? "(none)"}, not ${tls.sslPolicy}`);
    if (https.certificateArn !== tls.certificateArn)
      drift.push(`the HTTPS listener's certificate is ${https.certificateArn ?? "(none)"}, not ${tls.certificateArn}`);
  }
  if (!http) drift.push("there is no HTTP listener on 80 redirecting to HTTPS");
  else if (!http.redirectsToHttps) drift.push("the HTTP listener on 80 does not redirect to HTTPS");
  return drift;
}

/**
 * Creates or corrects the listeners and attributes. An environment that gains https keeps
 * serving: the new HTTPS listener starts with what the HTTP one served, then HTTP redirects.
 */
export async function secureLoadBalancer(clients: AwsClients, env: AwsEnvironment, lbArn: string): Promise<void> {
  const { attributes, https, http } = await readFacts(clients, lbArn);
  if (attributes[DROP_INVALID_HEADERS] !== "true") await setLoadBalancerAttributes(clients, lbArn, { [DROP_INVALID_HEADERS]: "true" });
  const tls = listenerTls(env);
  if (attributes[DELETION_PROTECTION] !== String(env.deletionProtection))
    await setDeletionProtection(clients, lbArn, env.deletionProtection);
  if (!tls) {
    // Without https, 80 serves what 443 served (or 503 until a switch), then 443 goes.
    const served = https ? servedActions(https) : undefined;
    if (!http) await createListener(clients, lbArn, undefined, served);
    else if (http.redirectsToHttps) await setListenerActions(clients, http.arn, served);
    if (https) await deleteListener(clients, https.arn);
    return;
  }
  if (!https) await createListener(clients, lbArn, tls, http && !http.redirectsToHttps ? servedActions(http) : undefined);
  else if (https.sslPolicy !== tls.sslPolicy || https.certificateArn !== tls.certificateArn) await setListenerTls(clients, https.arn, tls);
  if (!http?.redirectsToHttps) await redirectHttpToHttps(clients, lbArn, http?.arn);
}

/** A listener's forward, as CreateListener takes it (undefined: the new listener answers 503 until a switch). */
function servedActions(listener: ListenerFacts): ListenerFacts["defaultActions"] {
  const forward = listener.defaultActions?.find((a) => a.Type === "forward");
  if (!forward) return undefined;
  const groups = forward.ForwardConfig?.TargetGroups?.map((g) => ({ TargetGroupArn: g.TargetGroupArn, Weight: g.Weight })) ?? [
    { TargetGroupArn: forward.TargetGroupArn, Weight: 1 },
  ];
  return [{ Type: "forward", ForwardConfig: { TargetGroups: groups } }];
}
