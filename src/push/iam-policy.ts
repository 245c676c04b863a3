/** The least-privilege IAM policy for kiln push (and the deploy commands as they arrive). */
export function iamPolicy(): Record<string, unknown> {
  return {
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "KilnPushSnapshots",
        Effect: "Allow",
        Action: ["ebs:StartSnapshot", "ebs:PutSnapshotBlock", "ebs:CompleteSnapshot", "ebs:ListSnapshotBlocks", "ebs:ListChangedBlocks"],
        Resource: "arn:aws:ec2:*::snapshot/*",
      },
      {
        Sid: "KilnRegisterImages",
        Effect: "Allow",
        Action: ["ec2:RegisterImage", "ec2:DeregisterImage", "ec2:DescribeImages", "ec2:DescribeSnapshots", "ec2:DeleteSnapshot", "ec2:CreateTags", "ec2:CopyImage"],
        Resource: "*",
      },
      {
        Sid: "KilnEncryptedSnapshots",
        Effect: "Allow",
        Action: ["kms:GenerateDataKeyWithoutPlaintext", "kms:CreateGrant", "kms:DescribeKey"],
        Resource: "*",
        Condition: { StringLike: { "kms:ViaService": "ebs.*.amazonaws.com" } },
      },
    ],
  };
}
