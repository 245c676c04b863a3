/**
 * EC2 launch templates used as named locks: a launch template name is unique per account and
 * region, and CreateLaunchTemplate refuses a taken name with
 * InvalidLaunchTemplateName.AlreadyExistsException (moto answers the same). Taking a lock is
 * that one create; the outcome comes back as data, not as an error.
 */
import { CreateLaunchTemplateCommand, DeleteLaunchTemplateCommand, DescribeLaunchTemplatesCommand } from "@aws-sdk/client-ec2";
import type { AwsClients } from "./clients.js";
import { aws, AwsError } from "./errors.js";
import { LAUNCH_TEMPLATE_GONE } from "./ec2-deploy.js";

const NAME_TAKEN = "InvalidLaunchTemplateName.AlreadyExistsException";

export type LockTemplateCreation = { readonly status: "created"; readonly id: string } | { readonly status: "taken" };

export async function createLockTemplate(
  clients: AwsClients,
  name: string,
  description: string,
  clientToken: string,
  tags: Readonly<Record<string, string>>,
): Promise<LockTemplateCreation> {
  try {
    const out = await aws("CreateLaunchTemplate", name, () =>
      clients.ec2.send(
        new CreateLaunchTemplateCommand({
          LaunchTemplateName: name,
          VersionDescription: description,
          // Idempotency: AWS answers a retry of this same create with the template it made.
          ClientToken: clientToken.slice(0, 128),
          // Never launched from, but LaunchTemplateData is a required parameter: it holds the one
          // setting every kiln template has (IMDSv2 only).
          LaunchTemplateData: { MetadataOptions: { HttpTokens: "required" } },
          TagSpecifications: [{ ResourceType: "launch-template", Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }],
        }),
      ),
    );
    return { status: "created", id: out.LaunchTemplate!.LaunchTemplateId! };
  } catch (error) {
    if (error instanceof AwsError && error.code === NAME_TAKEN) return { status: "taken" };
    throw error;
  }
}

/** The launch template of that name with its tags (set at creation), or undefined. */
export async function describeLockTemplate(
  clients: AwsClients,
  name: string,
): Promise<{ id: string; tags: Record<string, string> } | undefined> {
  // A name filter answers "none" where LaunchTemplateNames would throw NotFound.
  const out = await aws("DescribeLaunchTemplates", name, () =>
    clients.ec2.send(new DescribeLaunchTemplatesCommand({ Filters: [{ Name: "launch-template-name", Values: [name] }] })),
  );
  const template = out.LaunchTemplates?.find((t) => t.LaunchTemplateName === name);
  if (!template?.LaunchTemplateId) return undefined;
  return { id: template.LaunchTemplateId, tags: Object.fromEntries((template.Tags ?? []).map((t) => [t.Key ?? "", t.Value ?? ""])) };
}

/** Deletes by id only: a name may already belong to a newer lock than the one read. */
export async function deleteLockTemplate(clients: AwsClients, id: string): Promise<"deleted" | "already-gone"> {
  try {
    await aws("DeleteLaunchTemplate", id, () => clients.ec2.send(new DeleteLaunchTemplateCommand({ LaunchTemplateId: id })));
    return "deleted";
  } catch (error) {
    if (error instanceof AwsError && LAUNCH_TEMPLATE_GONE.includes(error.code)) return "already-gone";
    throw error;
  }
}
