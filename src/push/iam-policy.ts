/** The least-privilege IAM policy for kiln push, promote/rollback/scale/destroy/status and logs. */
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
        Sid: "KilnDeploy",
        Effect: "Allow",
        Action: [
          "ec2:DescribeVpcs", "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups", "ec2:CreateSecurityGroup", "ec2:DeleteSecurityGroup",
          "ec2:AuthorizeSecurityGroupIngress", "ec2:DeleteTags", "ec2:DescribeInstanceTypeOfferings", "ec2:GetConsoleOutput",
          "ec2:CreateLaunchTemplate", "ec2:CreateLaunchTemplateVersion", "ec2:DescribeLaunchTemplates", "ec2:DeleteLaunchTemplate",
          "ec2:RunInstances", "ec2:DescribeInstances", "ec2:DescribeTags",
          "autoscaling:CreateAutoScalingGroup", "autoscaling:UpdateAutoScalingGroup", "autoscaling:DeleteAutoScalingGroup",
          "autoscaling:DescribeAutoScalingGroups", "autoscaling:CreateOrUpdateTags",
          "elasticloadbalancing:CreateLoadBalancer", "elasticloadbalancing:DeleteLoadBalancer", "elasticloadbalancing:DescribeLoadBalancers",
          "elasticloadbalancing:CreateListener", "elasticloadbalancing:DeleteListener", "elasticloadbalancing:DescribeListeners", "elasticloadbalancing:ModifyListener",
          "elasticloadbalancing:CreateTargetGroup", "elasticloadbalancing:DeleteTargetGroup", "elasticloadbalancing:DescribeTargetGroups",
          "elasticloadbalancing:ModifyTargetGroupAttributes", "elasticloadbalancing:DescribeTargetHealth",
          "elasticloadbalancing:AddTags", "elasticloadbalancing:RemoveTags", "elasticloadbalancing:DescribeTags",
        ],
        Resource: "*",
      },
      {
        // promote --canary on a load-balanced environment reads the ALB's request and 5xx counts
        // per target group; GetMetricData takes no resource-level permissions.
        Sid: "KilnCanaryMetrics",
        Effect: "Allow",
        Action: ["cloudwatch:GetMetricData"],
        Resource: "*",
      },
      {
        // mode: single-instance: kiln runs and terminates the instance itself and moves the
        // environment's Elastic IP (RunInstances, DescribeInstances, CreateTags/DeleteTags above).
        Sid: "KilnSingleInstance",
        Effect: "Allow",
        Action: [
          "ec2:AllocateAddress", "ec2:AssociateAddress", "ec2:DisassociateAddress", "ec2:ReleaseAddress", "ec2:DescribeAddresses",
          "ec2:TerminateInstances",
        ],
        Resource: "*",
      },
      {
        Sid: "KilnInstanceRoleForSecrets",
        Effect: "Allow",
        Action: [
          "iam:CreateRole", "iam:DeleteRole", "iam:PutRolePolicy", "iam:DeleteRolePolicy", "iam:TagRole", "iam:PassRole",
          "iam:CreateInstanceProfile", "iam:DeleteInstanceProfile", "iam:GetInstanceProfile", "iam:TagInstanceProfile",
          "iam:AddRoleToInstanceProfile", "iam:RemoveRoleFromInstanceProfile",
        ],
        Resource: ["arn:aws:iam::*:role/kiln-*", "arn:aws:iam::*:instance-profile/kiln-*"],
      },
      {
        Sid: "KilnAutoScalingServiceRole",
        Effect: "Allow",
        Action: "iam:CreateServiceLinkedRole",
        Resource: "arn:aws:iam::*:role/aws-service-role/autoscaling.amazonaws.com/*",
        Condition: { StringLike: { "iam:AWSServiceName": "autoscaling.amazonaws.com" } },
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
